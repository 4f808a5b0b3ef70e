"""The simulator's Messages API for an ordinary request, as plain WSGI in front of Flask.

Every SMS Kabootar sends while simulated is one of these requests, served by the same web
processes on the same cores as Kabootar: a 10,000-follower fan-out is 10,000 of them while
the texts keep coming. Through Flask (its request context, form parser, session and
jsonify) one cost about three times what storing the message does. So a urlencoded POST
(what Twilio's client sends) is read here and answered by the same `api.create` the Flask
view calls, with the same JSON, status and headers. Anything else (a multipart or JSON
body, a repeated field, another path) goes to Flask unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from redis.exceptions import RedisError
from werkzeug.datastructures import Authorization

from gateway.providers import forms
from gateway.providers.twilio.simulator import api
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PREFIX = f"{api.bp.url_prefix}/{api.API_VERSION}/Accounts/"
SUFFIX = "/Messages.json"
MAX_BODY_BYTES = 64 * 1024  # a 1,600-character body percent-encoded, and the other fields


def as_json(body: dict[str, Any]) -> bytes:
    """As Flask's jsonify writes it (sorted keys, compact, ASCII, a final newline)."""
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _credentials(environ: dict[str, Any]) -> tuple[str, str] | None:
    return api.basic_credentials(Authorization.from_header(environ.get("HTTP_AUTHORIZATION")))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status a fault test made up
        return "Error"


class FastSimulator:
    """WSGI middleware: answers ordinary Messages API requests itself, passes the rest on."""

    def __init__(self, app: WSGIApp, runtime: Runtime, extra_headers: Callable[[], list[tuple[str, str]]]):
        self._app = app
        self._runtime = runtime
        self._extra_headers = extra_headers

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        arrived = time.time()  # what a rate limit counts: when the request came
        path = environ.get("PATH_INFO", "")
        account_sid = path[len(PREFIX) : -len(SUFFIX)]
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(PREFIX)
            or not path.endswith(SUFFIX)
            or not account_sid
            or "/" in account_sid
        ):
            return self._app(environ, start_response)
        form = forms.read_urlencoded(environ, MAX_BODY_BYTES)
        if form is None:
            return self._app(environ, start_response)
        try:
            status, body = api.create(self._runtime, account_sid, form, _credentials(environ), arrived)
        except RedisError as e:  # Twilio's own trouble, in Twilio's shape: a client retries it
            log.warning("the Twilio simulator could not reach Redis: %s", type(e).__name__)
            status, body = api.error_json(20500, status=500)
        answer = as_json(body)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        if status == 401:
            headers.append(("WWW-Authenticate", api.WWW_AUTHENTICATE))
        start_response(f"{status} {_phrase(status)}", [*headers, *self._extra_headers()])
        return [answer]
