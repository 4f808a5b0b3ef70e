"""The feed blueprint, and the cache headers every public read carries."""

from __future__ import annotations

from flask import Blueprint, Response, request

bp = Blueprint("feed", __name__, template_folder="templates")

# Short, so a new post shows within seconds, yet long enough for a CDN or a proxy to
# absorb a crowd reading the same page at once.
MAX_AGE_SECONDS = 10


_PUBLIC = f"public, max-age={MAX_AGE_SECONDS}"
# The request headers that can turn a 200 into a 304, 412 or 206 (werkzeug's make_conditional).
CONDITIONAL_HEADERS = (
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_RANGE",
    "HTTP_RANGE",
)


@bp.after_request
def cache_headers(response: Response) -> Response:
    """ETag and Cache-Control on successful reads; 304 when the reader's copy is current."""
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    # Every feed read passes here, so the common case (no Cache-Control yet, no
    # conditional request) sets plain headers rather than parsing them back.
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = _PUBLIC
    # A view that marked its response private (a page with a reply form's CSRF token,
    # which belongs to one reader's session) keeps it so: no shared cache may serve it.
    elif not (response.cache_control.private or response.cache_control.no_store):
        response.cache_control.public = True
        response.cache_control.max_age = MAX_AGE_SECONDS
    response.add_etag()  # keeps an ETag the view already set (cache.py)
    if any(name in request.environ for name in CONDITIONAL_HEADERS):
        response.make_conditional(request)  # turns it into a 304 in place when the copy is current
    return response
