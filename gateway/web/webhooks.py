"""POST /twilio/sms: Twilio's inbound webhook. Thin on purpose.

It answers 200 only once the text is stored and queued in Redis, so Twilio never
hears "got it" for a text we could lose; when Redis cannot be reached it answers 503
and Twilio's fallback URL takes over. It never sends SMS and never makes posts.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from redis.exceptions import RedisError

from gateway.phones import mask
from gateway.pipeline import intake as inbound
from gateway.providers.twilio import empty_twiml
from gateway.store import keys, queues, stats
from gateway.web.extension import Kabootar, kabootar

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)

MAX_BODY_BYTES = 64 * 1024
_TWIML = empty_twiml()


def empty_twiml_bytes() -> bytes:
    """The answer to every accepted text: empty TwiML, "received, nothing to send back"."""
    return _TWIML.encode()


def _twiml() -> Response:
    return Response(_TWIML, 200, content_type="application/xml")


def _check_signature() -> None:
    ext = kabootar()
    if not ext.signatures.is_valid(
        request.full_path, request.form, request.headers.get("X-Twilio-Signature", "")
    ):
        log.warning("rejected a webhook with a bad or missing signature")
        _count("rejected")
        abort(403)


def _count(name: str) -> None:
    """Count a refused request for the console; never fail the answer over it."""
    try:
        stats.record(kabootar().runtime.redis, name)
    except RedisError:
        pass


def store_text(ext: Kabootar, sms: inbound.InboundSMS) -> str:
    """Store a checked text in the inbox and see that a drain job will post it; returns
    `inbound.store`'s outcome. Raises RedisError when the text may not be stored."""
    outcome = inbound.store(ext.runtime.redis, ext.runtime.vault, sms)
    if outcome == "schedule":
        try:
            queues.enqueue_drain(ext.queues[keys.QUEUE_INBOUND])
        except RedisError:
            # The text is safe in the inbox; a worker's watchdog schedules the drain.
            log.warning("stored %s but could not enqueue its drain job", sms.message_sid)
    return outcome


@bp.post("/twilio/sms")
def receive_sms() -> Response:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        abort(413)
    _check_signature()
    try:
        sms = inbound.InboundSMS.from_twilio(request.form)
    except inbound.MalformedMessage as e:
        _count("malformed")
        abort(400, str(e))
    try:
        outcome = store_text(kabootar(), sms)
    except RedisError as e:
        # Stored or not, we cannot promise it: make Twilio use the fallback URL. One line,
        # not a traceback: an outage refuses every text, and the cause is all that helps.
        log.warning("could not store %s from %s: %s", sms.message_sid, mask(sms.sender), type(e).__name__)
        abort(503)
    if current_app.debug:
        log.debug("%s %s from %s", outcome, sms.message_sid, mask(sms.sender))
    return _twiml()
