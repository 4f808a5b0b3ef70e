"""The public pages: /, /@<handle>, /tags/<tag>, /posts/<id>. Plain HTML, no JavaScript."""

from __future__ import annotations

from typing import Any

from flask import current_app, make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway.microblog import posts
from gateway.runtime import Runtime
from gateway.web.feed import cache, query, render
from gateway.web.feed.blueprint import bp
from gateway.web.feed.query import Timeline

HTML_TYPE = "text/html; charset=utf-8"


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {"render": render}


def error_page(status: int, message: str) -> ResponseReturnValue:
    """A small HTML page for a 4xx, in the same look as the feed."""
    return render_template("feed/error.html", status=status, message=message), status


def _timeline_page(timeline: Timeline | None, endpoint: str, **params: Any) -> ResponseReturnValue:
    """One page of a timeline, `before` the reader's cursor, with a link to the next."""
    if timeline is None:
        return error_page(404, "Nothing here: no such handle or tag.")
    try:
        before = query.parse_before(request.args.get("before"))
    except query.BadRequest as e:
        return error_page(400, str(e))
    found = posts.read_page(Runtime.of(current_app).redis, timeline.key, before, query.PAGE_SIZE)

    def make() -> str:
        return render_template(
            "feed/timeline.html",
            timeline=timeline,
            posts=found.posts(),
            older=url_for(endpoint, **params, before=found.next) if found.next else None,
            newest=url_for(endpoint, **params) if before is not None else None,
            atom_url=url_for(f"feed.atom_{timeline.kind}", **params),
        )

    # The links depend on where the app is mounted, the endpoint and its parameters.
    key = ("page", request.script_root, endpoint, tuple(sorted(params.items())), timeline, before, found)
    return cache.response(key, make, HTML_TYPE)


@bp.get("/")
def index() -> ResponseReturnValue:
    return _timeline_page(query.everything(), "feed.index")


@bp.get("/@<handle>")
def handle_page(handle: str) -> ResponseReturnValue:
    timeline = query.by_handle(Runtime.of(current_app).redis, handle)
    return _timeline_page(timeline, "feed.handle_page", handle=timeline.name if timeline else handle)


@bp.get("/tags/<tag>")
def tag_page(tag: str) -> ResponseReturnValue:
    return _timeline_page(query.by_tag(Runtime.of(current_app).redis, tag), "feed.tag_page", tag=tag)


@bp.get("/posts/<post_id>")
def post_page(post_id: str) -> ResponseReturnValue:
    found = query.thread(Runtime.of(current_app).redis, post_id)
    if found is None:
        return error_page(404, "No such post.")
    post, replies = found
    reply_action = url_for("web_replies.create_reply", post_id=post.id)
    response = make_response(
        render_template("feed/post.html", post=post, replies=replies, reply_action=reply_action)
    )
    # The reply form carries a CSRF token tied to this reader's session: no shared cache.
    response.cache_control.private = True
    response.cache_control.no_cache = True
    return response
