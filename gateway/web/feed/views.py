"""The public pages: /, /@<handle>, /tags/<tag>, /posts/<id>. Plain HTML, no JavaScript."""

from __future__ import annotations

from typing import Any

from flask import current_app, make_response, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway.microblog import posts
from gateway.runtime import Runtime
from gateway.web.feed import atom as atom_feed
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


# Each timeline has a page and an Atom feed ("feed.atom_<kind>"): one view serves both.
@bp.get("/", endpoint="index")
@bp.get("/feed.atom", endpoint="atom_all")
def everything() -> ResponseReturnValue:
    return _timeline("all")


@bp.get("/@<handle>", endpoint="handle_page")
@bp.get("/@<handle>/feed.atom", endpoint="atom_handle")
def by_handle(handle: str) -> ResponseReturnValue:
    return _timeline("handle", handle)


@bp.get("/tags/<tag>", endpoint="tag_page")
@bp.get("/tags/<tag>/feed.atom", endpoint="atom_tag")
def by_tag(tag: str) -> ResponseReturnValue:
    return _timeline("tag", tag)


def _timeline(kind: str, name: str = "") -> ResponseReturnValue:
    timeline, params = query.named(Runtime.of(current_app).redis, kind, name)
    if timeline is None:
        return error_page(404, "Nothing here: no such handle or tag.")
    if request.endpoint == f"feed.atom_{kind}":
        return atom_feed.serve(timeline, params)
    return _page(timeline, params)


def _page(timeline: Timeline, params: dict[str, Any]) -> ResponseReturnValue:
    """One page of a timeline, `before` the reader's cursor, with a link to the next."""
    endpoint = query.PAGE_ENDPOINTS[timeline.kind]
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

    # The links depend on where the app is mounted and on the timeline's parameters.
    media_allow_http = Runtime.of(current_app).config.media_allow_http
    key = (
        "page",
        media_allow_http,
        request.script_root,
        tuple(sorted(params.items())),
        timeline,
        before,
        found,
    )
    return cache.response(key, make, HTML_TYPE)


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
