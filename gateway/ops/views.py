"""GET /ops (the console), GET /ops/api/health (its figures as JSON), login and logout."""

from __future__ import annotations

import math
from typing import Any

from flask import current_app, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf

from gateway.ops import alerts, audit, auth, settings, snapshot
from gateway.ops.blueprint import bp
from gateway.runtime import Runtime


def figures(detail: bool = True) -> dict[str, Any]:
    """The console's figures for this app's Redis."""
    return snapshot.take(Runtime.of(current_app), detail=detail)


@bp.get("")
def console() -> ResponseReturnValue:
    return render_template(
        "ops/console.html",
        h=figures(),
        operator=g.operator,
        thresholds=alerts.OLDEST_ALERT_SECONDS,
        config=Runtime.of(current_app).config,
        settings=settings.shown(Runtime.of(current_app).config),
        queue_names=list(Runtime.of(current_app).queues),
        audit_entries=audit.recent(Runtime.of(current_app).redis),
    )


@bp.get("/api/health")
def health() -> ResponseReturnValue:
    """The console's figures, for its own refresh and for scripts (`curl -u name:password`)."""
    found = figures()
    found["csrf"] = generate_csrf()  # the page's forms stay valid however long it stays open
    return jsonify(found)


@bp.get("/api/alerts")
def alert_list() -> ResponseReturnValue:
    """The alerts firing now, most severe rules first: [{"name", "severity", "since", "summary"}]
    (gateway/ops/alerts.py). Also for the scraper's METRICS_TOKEN (blueprint.py)."""
    runtime = Runtime.of(current_app)
    return jsonify([a.to_json() for a in alerts.evaluate(runtime.redis, snapshot.read(runtime))])


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: a login link must not send anyone elsewhere."""
    if target and target.startswith("/ops") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("ops.console")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if auth.session_operator():
            return redirect(next_url, code=303)
        return render_template("ops/login.html", next_url=next_url, error=None)
    auth.check_csrf()
    name = request.form.get("name", "")[:64]
    result = auth.log_in(name, request.form.get("password", ""))
    if result.operator:
        response = redirect(next_url, code=303)
        auth.remember_device(response, result.operator)
        return response
    if result.wait:
        error, status = f"Too many failed logins. Try again in {waiting(result.wait)}.", 429
        headers = {"Retry-After": str(result.wait)}
    else:
        error, status, headers = "Wrong name or password.", 401, {}
    page = render_template("ops/login.html", next_url=next_url, error=error, name=name)
    return page, status, headers


def waiting(seconds: int) -> str:
    """A wait as a person says it: "1 second", "12 seconds", "15 minutes"."""
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return "1 second" if seconds == 1 else f"{seconds} seconds"


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    auth.log_out()
    return redirect(url_for("ops.login"), code=303)
