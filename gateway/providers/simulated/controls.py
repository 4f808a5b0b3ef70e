"""What the simulators' test hooks (`POST /dev/<provider>/control/<action>`) share: reading a
duration from the form, and their plain-text answers."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, request
from redis import Redis

from gateway.runtime import Runtime


class BadControl(ValueError):
    """A control request whose values cannot be used; the message says what they must be."""


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

    def control_delay() -> Response:
        try:
            set_delay(Runtime.of(current_app).redis, seconds("0", 30.0))
        except BadControl as e:
            return refused(e)
        return ok()

    bp.add_url_rule("/control/delay", "control_delay", control_delay, methods=["POST"])
