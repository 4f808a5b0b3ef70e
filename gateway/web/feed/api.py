"""The JSON API: GET /api/v1/posts (a page of a timeline) and GET /api/v1/posts/<id>.

Responses are UTF-8 JSON with non-ASCII kept as written, so Persian and emoji come
back byte for byte and stay readable in a terminal; errors are {"error": "..."}.
"""

from __future__ import annotations

import json

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue

from gateway.microblog import posts
from gateway.runtime import Runtime
from gateway.web.feed import cache, query
from gateway.web.feed.blueprint import bp

JSON_TYPE = "application/json; charset=utf-8"


def json_response(payload: object, status: int = 200) -> Response:
    """`payload` as UTF-8 JSON, non-ASCII left as is (Flask's jsonify would escape it)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status, content_type=JSON_TYPE)


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


@bp.get("/api/v1/posts")
def api_posts() -> ResponseReturnValue:
    """Newest first: {"posts": [...], "next": cursor or null}; filter by handle or tag."""
    args = request.args
    handle, tag = args.get("handle", ""), args.get("tag", "")
    try:
        before = query.parse_before(args.get("before"))
        limit = query.parse_limit(args.get("limit"))
    except query.BadRequest as e:
        return _error(400, str(e))
    if handle and tag:
        return _error(400, "give handle or tag, not both")
    runtime = Runtime.of(current_app)
    redis, allow_http = runtime.redis, runtime.config.media_allow_http
    if handle:
        timeline = query.by_handle(redis, handle)
    elif tag:
        timeline = query.by_tag(redis, tag)
    else:
        timeline = query.everything()
    if timeline is None:
        return _error(404, f"no such {'handle' if handle else 'tag'}")
    found = posts.read_page(redis, timeline.key, before, limit)
    return cache.response(("api", allow_http, found), lambda: _page_json(found, allow_http), JSON_TYPE)


def _page_json(found: posts.Page, media_allow_http: bool) -> str:
    payload = {"posts": [p.to_json(media_allow_http) for p in found.posts()], "next": found.next}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


@bp.get("/api/v1/posts/<post_id>")
def api_post(post_id: str) -> ResponseReturnValue:
    """One post with its replies, oldest first."""
    runtime = Runtime.of(current_app)
    found = query.thread(runtime.redis, post_id)
    if found is None:
        return _error(404, "no such post")
    post, replies = found
    allow_http = runtime.config.media_allow_http
    return json_response({**post.to_json(allow_http), "replies": [r.to_json(allow_http) for r in replies]})
