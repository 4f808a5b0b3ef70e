"""POST /posts/<id>/replies: a reader on the web replies to a post, and its author gets it by SMS.

The form (`feed/templates/feed/_reply_form.html` on the post page) carries a Flask-WTF CSRF token tied
to the reader's session. A client address (`auth.client_address`, which believes
X-Forwarded-For only from TRUSTED_PROXIES) may send REPLIES_PER_MINUTE replies a minute,
invalid ones included; it is counted under a keyed hash, so no address is stored. The
reply is a post with source "web" and the reader's chosen display name, which is never a
handle: it is kept without "@" or invisible characters (`text.display_name`) and always
shown as "Name (web)"; `fanout` texts it to the author.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from gateway.microblog import posts, text
from gateway.ops import auth
from gateway.outbox import fanout
from gateway.runtime import Runtime
from gateway.store import keys
from gateway.web.feed.views import error_page

bp = Blueprint("web_replies", __name__)

NAME_MAX = 40
BODY_MAX = 280
REPLIES_PER_MINUTE = 5
clock = time.time  # the rate limit's clock: tests move it a minute on


@bp.record_once
def _template_helpers(state: object) -> None:
    # The reply form on the post page renders `csrf_token()` when it is defined.
    app = state.app  # type: ignore[attr-defined]
    app.jinja_env.globals.setdefault("csrf_token", generate_csrf)


def _strip(value: str | None) -> str | None:
    return " ".join(value.split()) if value is not None else None


def _strip_lines(value: str | None) -> str | None:
    return value.replace("\r\n", "\n").strip() if value is not None else None


class ReplyForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF ships no type hints
    name = StringField(
        filters=[_strip],
        validators=[
            DataRequired("Write the name to show with your reply."),
            Length(max=NAME_MAX, message=f"Your name can be at most {NAME_MAX} characters."),
        ],
    )
    body = TextAreaField(
        filters=[_strip_lines],
        validators=[
            DataRequired("Write a reply."),
            Length(max=BODY_MAX, message=f"A reply can be at most {BODY_MAX} characters."),
        ],
    )


def _over_limit() -> int:
    """Count this request; seconds until the client may reply again, or 0 when within the limit."""
    now = clock()
    window = int(now // 60)
    pipe = Runtime.of(current_app).redis.pipeline(transaction=False)
    key = keys.web_reply_rate(auth.client_key("web-reply"), window)
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    return 0 if count <= REPLIES_PER_MINUTE else int((window + 1) * 60 - now) + 1


@bp.post("/posts/<int:post_id>/replies")
def create_reply(post_id: int) -> ResponseReturnValue:
    """Make a web reply to a post; back to the post on success."""
    runtime = Runtime.of(current_app)
    if posts.get(runtime.redis, post_id) is None:
        return error_page(404, "No such post.")
    wait = _over_limit()
    if wait:
        response = current_app.make_response(
            error_page(429, "Too many replies from your address: wait a minute and try again.")
        )
        response.headers["Retry-After"] = str(wait)
        return response
    form = ReplyForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            return error_page(
                400, "This form has expired or came from another site: reload the page and try again."
            )
        first = next(iter(form.errors.values()))[0]
        return error_page(400, str(first))
    name = text.display_name(form.name.data or "") or "web"
    reply_id = posts.create(
        runtime.redis,
        posts.NewPost(body=form.body.data or "", source="web", display_name=name, reply_to=post_id),
    )
    fanout.enqueue(Runtime.of(current_app).queues, [reply_id])
    return redirect(url_for("feed.post_page", post_id=post_id), code=303)
