"""The webhook's common case as plain WSGI, in front of Flask.

Twilio's webhook is the one request a shutdown multiplies by thousands per second, and
Flask's request machinery (context locals, the form parser, the Response object) cost
more CPU than storing the text does. So an ordinary text (a urlencoded form, validly
signed, with a MessageSid and a From) is read, checked and stored here, with the same
`inbound` functions the Flask view uses, and answered without entering Flask.

Anything else (a bad signature, a malformed or oversized form, Redis trouble, any other
path) goes to the Flask app unchanged, with the body it sent still readable, so refusals,
their counting and their logging live in one place: `webhook.py`.
"""

from __future__ import annotations

import io
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from gateway import inbound, keys, queues, webhook
from gateway.extension import Kabootar

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PATH = "/twilio/sms"
_FORM = "application/x-www-form-urlencoded"


class FastWebhook:
    """WSGI middleware: answers an ordinary signed text itself, passes everything else on."""

    def __init__(self, app: WSGIApp, ext: Kabootar, extra_headers: Callable[[], list[tuple[str, str]]]):
        self._app = app
        self._ext = ext
        self._extra_headers = extra_headers
        self._twiml = webhook.empty_twiml_bytes()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        body = self._read_small_form(environ)
        if body is None or not self._store(environ, body):
            return self._app(environ, start_response)
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(self._twiml))),
            *self._extra_headers(),
        ]
        start_response("200 OK", headers)
        return [self._twiml]

    def _read_small_form(self, environ: dict[str, Any]) -> bytes | None:
        """The request's urlencoded body, leaving it readable for Flask; None if not that."""
        if environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower() != _FORM:
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            return None
        if not 0 <= length <= webhook.MAX_BODY_BYTES:
            return None
        body: bytes = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _store(self, environ: dict[str, Any], body: bytes) -> bool:
        """Check and store an ordinary text; False when Flask must answer instead."""
        try:
            pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
        except UnicodeError:
            return False
        form = dict(pairs)
        if len(form) != len(pairs):
            return False  # a repeated field: let werkzeug's MultiDict and the validator decide
        query = environ.get("QUERY_STRING", "")
        full_path = PATH + "?" + query if query else PATH
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not self._ext.signatures.is_valid(full_path, form, signature):
            return False
        try:
            sms = inbound.InboundSMS.from_twilio(form)
        except inbound.MalformedMessage:
            return False
        runtime = self._ext.runtime
        try:
            outcome = inbound.store(runtime.redis, runtime.vault, sms)
        except RedisError:
            return False  # Flask tries once more and answers 503 if Redis is still away
        if outcome == "schedule":
            try:
                queues.enqueue_drain(self._ext.queues[keys.QUEUE_INBOUND])
            except RedisError:
                log.warning("stored %s but could not enqueue its drain job", sms.message_sid)
        return True
