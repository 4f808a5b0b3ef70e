"""Twilio's two webhooks, their common case, as plain WSGI in front of Flask.

Twilio's webhooks are the requests a shutdown multiplies by thousands per second: a text
for every SMS received, two or three status callbacks for every SMS sent. Flask's
request machinery (context locals, the form parser, the Response object) costs more CPU
than storing a text or a status does. So an ordinary one (a urlencoded form, validly
signed, with the fields it needs) is read, checked and stored here, with the same
functions the Flask views use (`intake.accept`, `webhooks.record_status`), and answered
without entering Flask.

Anything else (a bad signature, a malformed or oversized form, Redis trouble, any other
path) goes to the Flask app unchanged, with the body it sent still readable, so refusals,
their counting and their logging live in one place: `webhooks.py`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from gateway.pipeline import intake
from gateway.providers import forms
from gateway.providers.records import MalformedWebhook
from gateway.providers.twilio import webhooks as twilio
from gateway.runtime import Runtime
from gateway.web import webhooks

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FastWebhook:
    """WSGI middleware: answers ordinary signed webhooks itself, passes everything else on."""

    def __init__(self, app: WSGIApp, runtime: Runtime, extra_headers: Callable[[], list[tuple[str, str]]]):
        self._app = app
        self._runtime = runtime
        self._signatures = twilio.checker(runtime.config)
        self._extra_headers = extra_headers
        # What each path does with a signed form; its answer (content type and body) when it could.
        self._handlers: dict[str, tuple[Callable[[dict[str, Any], dict[str, str]], bool], str, bytes]] = {}
        if twilio.CHANNEL in runtime.config.sms_providers:
            self._handlers[twilio.SMS_PATH] = (self._store_text, "application/xml", twilio.EMPTY_TWIML)
            self._handlers[twilio.STATUS_PATH] = (self._record_status, "text/html; charset=utf-8", b"")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self._handlers.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        handle, content_type, answer = handler
        form = self._signed_form(environ)
        if form is None or not handle(environ, form):
            return self._app(environ, start_response)
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(answer))),
            *self._extra_headers(),
        ]
        start_response("200 OK", headers)
        return [answer]

    def _signed_form(self, environ: dict[str, Any]) -> dict[str, str] | None:
        """The request's form if it is a small urlencoded one signed by Twilio, else None.
        The body stays readable for Flask either way."""
        form = forms.read_urlencoded(environ, webhooks.MAX_BODY_BYTES)
        if form is None:
            return None
        query = environ.get("QUERY_STRING", "")
        path = environ["PATH_INFO"]
        full_path = path + "?" + query if query else path
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        return form if self._signatures.is_valid(full_path, form, signature) else None

    def _store_text(self, environ: dict[str, Any], form: dict[str, str]) -> bool:
        """Store an ordinary text; False when Flask must answer instead."""
        try:
            intake.accept(self._runtime, twilio.parse_text(form))
        except (MalformedWebhook, RedisError):
            return False  # Flask refuses it, or tries once more and answers 503 if Redis is still away
        return True

    def _record_status(self, environ: dict[str, Any], form: dict[str, str]) -> bool:
        """Record an ordinary delivery report; False when Flask must answer instead."""
        try:
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), errors="strict")
            message_id = query.get("m", [""])[0]  # the first, as Flask's request.args.get
            return webhooks.record_status(self._runtime, message_id, form)
        except (UnicodeError, RedisError):
            return False
