"""POST /ops/api/*: the console's actions — failed jobs, moderation, and providers marked
down or up.

Each answers JSON to a script (Accept: application/json) and, to the page's plain HTML
forms, a redirect back to the console with a one-line message. The blueprint's guard
has already checked the login and the CSRF token.
"""

from __future__ import annotations

import logging
import re

from flask import current_app, flash, g, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue

from gateway.microblog import moderation
from gateway.ops import failed
from gateway.ops.blueprint import bp
from gateway.outbox import routes
from gateway.phones import redact
from gateway.runtime import Runtime

log = logging.getLogger(__name__)
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
BLOCK_KEY = re.compile(r"^[A-Za-z0-9_-]{24}$")  # a keyed hash of a number (PhoneVault.lookup_key)


def answer(ok: bool, message: str, anchor: str, status: int = 200) -> ResponseReturnValue:
    log.info("operator %s: %s", g.operator, redact(message))  # a "handle" typed may be a number
    wants_json = request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
    if wants_json:
        return jsonify(ok=ok, message=message), (status if not ok else 200)
    flash(message, "ok" if ok else "error")
    return redirect(url_for("ops.console") + f"#{anchor}", code=303)


@bp.post("/api/jobs/<job_id>/<any(retry, discard):action>")
def job_action(job_id: str, action: str) -> ResponseReturnValue:
    if not JOB_ID.match(job_id):
        return answer(False, "No such job.", "failed", 404)
    queues = Runtime.of(current_app).queues
    ok = failed.retry(queues, job_id) if action == "retry" else failed.discard(queues, job_id)
    if not ok:
        return answer(False, f"Job {job_id} is no longer among the failed jobs.", "failed", 404)
    verb = "Retried" if action == "retry" else "Discarded"
    return answer(True, f"{verb} job {job_id}.", "failed")


@bp.post("/api/posts/<any(hide, restore):action>")
def post_action(action: str) -> ResponseReturnValue:
    raw = request.form.get("post_id", "").strip().lstrip("#")
    if not raw.isdecimal() or len(raw) > 18:  # isdigit() passes "²", which int() refuses
        return answer(
            False, "A post id is a number (the end of the post's address, /posts/<id>).", "moderation", 400
        )
    post_id = int(raw)
    redis = Runtime.of(current_app).redis
    if not moderation.set_hidden(redis, post_id, action == "hide", operator=g.operator):
        return answer(False, f"There is no post {post_id}.", "moderation", 404)
    done = "hidden from every public page" if action == "hide" else "restored"
    return answer(True, f"Post {post_id} is {done}.", "moderation")


@bp.post("/api/handles/<any(block, unblock):action>")
def handle_action(action: str) -> ResponseReturnValue:
    """Block (hiding their posts unless `hide` says "0") or unblock the number behind a handle."""
    handle = request.form.get("handle", "").strip().lstrip("@")[:64]
    if not handle:
        return answer(False, "Give the handle to block, e.g. @quiet-falcon-27.", "moderation", 400)
    runtime = Runtime.of(current_app)
    lookup_key = moderation.lookup_key_of(runtime.redis, runtime.vault, handle)
    if lookup_key is None:
        return answer(False, f"There is no @{handle}.", "moderation", 404)
    if action == "unblock":
        return _unblock(lookup_key, f"@{handle}")
    # The page's checkbox sends "1" after a hidden "0": absent altogether (a script), it hides.
    hide = "1" in request.form.getlist("hide") or not request.form.getlist("hide")
    moderation.block(runtime.redis, lookup_key, hide, operator=g.operator, target=f"@{handle}")
    posts = "their posts are hidden" if hide else "their posts stay up"
    return answer(True, f"@{handle} is blocked: their texts no longer become posts; {posts}.", "moderation")


@bp.post("/api/blocks/<key>/unblock")
def block_action(key: str) -> ResponseReturnValue:
    """Unblock from the list of blocks, which also lists numbers that have no handle now."""
    if not BLOCK_KEY.match(key):
        return answer(False, "No such block.", "moderation", 404)
    return _unblock(key, "a blocked number")


def _unblock(lookup_key: str, target: str) -> ResponseReturnValue:
    if not moderation.unblock(Runtime.of(current_app).redis, lookup_key, operator=g.operator, target=target):
        return answer(False, f"{target} is not blocked.", "moderation", 404)
    return answer(True, f"{target} is unblocked; posts the block hid are back.", "moderation")


@bp.post("/api/providers/<name>/<any(down, up):action>")
def provider_action(name: str, action: str) -> ResponseReturnValue:
    """Mark a provider down (with SMS_FAILOVER on, its SMS go through another) or up again."""
    config = Runtime.of(current_app).config
    if name not in config.sms_providers:
        return answer(False, "No such provider is on.", "providers", 404)
    routes.set_down(Runtime.of(current_app).redis, name, action == "down")
    logged = "marked down" if action == "down" else "marked up"
    if action == "down" and not config.sms_failover:
        logged += " (SMS_FAILOVER is off: its SMS still go through it)"
    return answer(True, f"Provider {name} is {logged}.", "providers")
