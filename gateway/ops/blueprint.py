"""The console's blueprint: every route under /ops needs a logged-in operator.

The guard runs before each request (so a new route cannot forget it): no operator, no
page — a redirect to the login form, or 401 for the JSON API (which scripts may also
read with HTTP Basic credentials). Every POST must carry the session's CSRF token.
Responses are never cached and carry a strict CSP: the page loads one script file and
no inline code.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from redis.exceptions import RedisError

from gateway.ops import auth
from gateway.ops.metrics import scraper_token_given
from gateway.runtime import Runtime

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates", static_folder="static")

PUBLIC_ENDPOINTS = {"ops.login", "ops.static"}
# What the Prometheus scraper's token (METRICS_TOKEN) may read besides /metrics: a monitor
# without Alertmanager polls the alerts with the token it already has.
SCRAPER_ENDPOINTS = {"ops.alert_list"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@bp.before_request
def require_operator() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    g.operator = auth.session_operator()
    if g.operator is None and request.endpoint in SCRAPER_ENDPOINTS:
        if scraper_token_given(Runtime.of(current_app).config.metrics_token):
            g.operator = "the scraper"
    if g.operator is None and request.method == "GET" and request.path.startswith("/ops/api/"):
        # Scripts read the figures with an operator's name and password (`curl -u`). Only
        # reads: a browser replays Basic credentials on its own, so actions need a session.
        basic = auth.basic_login()
        if basic and basic.wait:
            message = f"too many failed logins: try again in {basic.wait} s"
            return jsonify(error=message), 429, {"Retry-After": str(basic.wait)}
        g.operator = basic.operator if basic else None
    if g.operator is None:
        if request.path.startswith("/ops/api/"):
            return jsonify(error="log in at /ops/login first"), 401
        target = request.full_path if request.method == "GET" else url_for("ops.console")
        return redirect(url_for("ops.login", next=target.rstrip("?")), code=303)
    if request.method == "POST":
        auth.check_csrf()
    return None


@bp.errorhandler(RedisError)
def redis_down(e: RedisError) -> ResponseReturnValue:
    """Redis is where every figure lives: say so plainly rather than crash."""
    log.error("console cannot reach Redis: %s", e)
    message = "Redis cannot be reached: texts cannot be stored or read. Is it running?"
    if request.path.startswith("/ops/api/"):
        return jsonify(error=message), 503
    return Response(message + "\n", 503, content_type="text/plain; charset=utf-8")


@bp.after_request
def security_headers(response: Response) -> Response:
    if request.endpoint == "ops.static":
        return response
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.context_processor
def template_helpers() -> dict[str, object]:
    from gateway.ops import present

    return {"csrf_token": generate_csrf, "fmt": present.fmt, "spark_points": present.spark_points}
