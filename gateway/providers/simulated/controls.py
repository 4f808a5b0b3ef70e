"""What the simulators' test hooks (`POST /dev/<provider>/control/<action>`) share: who may
use them, reading a duration from the form, and their plain-text answers.

The hooks take the simulated carrier down, so only the developer at the dev phone may use
them: a browser that opened /dev/phone (`open_dev_session`), with that session's CSRF
token (Flask-WTF's, as every form of the app), so another site's page cannot either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Blueprint, Response, current_app, request, session
from flask_wtf.csrf import ValidationError, validate_csrf
from redis import Redis

from gateway.runtime import Runtime

DEV_SESSION = "dev_phone"  # set in the session of a browser that opened /dev/phone

Control = Callable[[], Response]


class BadControl(ValueError):
    """A control request whose values cannot be used; the message says what they must be."""


def open_dev_session() -> None:
    """Mark this browser's session as the developer's: it opened the dev phone."""
    session[DEV_SESSION] = True


def refusal() -> Response | None:
    """Why this request may not drive a simulator (a 403 or 400 answer), or None if it may."""
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken") or ""
    try:
        validate_csrf(token)
    except ValidationError as e:
        return Response(f"{e} Reload the page and try again.\n", 400, content_type="text/plain")
    if not session.get(DEV_SESSION):
        return Response("Open /dev/phone in this browser first.\n", 403, content_type="text/plain")
    return None


def hook(view: Control) -> Control:
    """A control hook: refused unless the dev session asks, with its CSRF token."""

    @functools.wraps(view)
    def guarded() -> Response:
        refused_here = refusal()
        return refused_here if refused_here is not None else view()

    return guarded


def seconds(default: str, most: float) -> float:
    """The form's `seconds`, from 0 to `most`; raises BadControl when it is not a number."""
    try:
        return min(most, max(0.0, float(request.form.get("seconds", default))))
    except ValueError:
        raise BadControl("seconds is a number") from None


def ok() -> Response:
    return Response("ok\n", 200, content_type="text/plain")


def refused(error: ValueError) -> Response:
    return Response(f"{error}\n", 400, content_type="text/plain")


def add_delay(bp: Blueprint, set_delay: Callable[[Redis, float], None]) -> None:
    """Give a simulator's blueprint POST /control/delay: take `seconds` (at most 30) to
    answer each request, and as long again to report on it (a slow network)."""

    @hook
    def control_delay() -> Response:
        try:
            set_delay(Runtime.of(current_app).redis, seconds("0", 30.0))
        except BadControl as e:
            return refused(e)
        return ok()

    bp.add_url_rule("/control/delay", "control_delay", control_delay, methods=["POST"])
