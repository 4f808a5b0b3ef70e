"""The providers' webhooks: Twilio's POST /twilio/sms (a text received) and POST
/twilio/status (a report on an SMS we sent), and the Android phone's POST /android/webhook
(both kinds, as JSON). Thin on purpose: the provider's module checks and reads the request
into a neutral record, the pipeline or the outbox takes it from there. A provider that is
not on (SMS_PROVIDERS) has no webhook: 404.

A text is answered 200 only once it is stored and queued in Redis, so the provider never
hears "got it" for a text we could lose; when Redis cannot be reached the answer is 503
and the provider's fallback URL takes over. Nothing here sends SMS or makes posts.

Reports repeat and arrive out of order; `outbound.record_report` only moves a message
forward, and is what tells our SMS from others. Reports on unknown messages still get
200, or the provider would retry them forever. The ordinary case of both is answered in
`fast_webhooks.py` before Flask is entered, with the same `intake.accept` and
`record_status`; these views answer the rest (bad signatures, malformed forms, Redis
away), so refusals and their counting live here alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Blueprint, Response, abort, current_app, request
from redis.exceptions import RedisError

from gateway.outbox import outbound
from gateway.phones import mask
from gateway.pipeline import intake
from gateway.providers.android import webhooks as android
from gateway.providers.records import DeliveryReport, InboundText, MalformedWebhook
from gateway.providers.twilio import webhooks as twilio
from gateway.runtime import Runtime
from gateway.store import stats

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# The largest request body the app reads (Flask's MAX_CONTENT_LENGTH: larger is a 413),
# webhooks included; fast_webhooks.py leaves a larger one to Flask.
MAX_BODY_BYTES = 64 * 1024


def record_status(runtime: Runtime, message_id: str, form: Mapping[str, str]) -> bool:
    """Settle our SMS `message_id` (the `m` of the URL) with a signed status callback; False,
    recording nothing, when MessageSid or MessageStatus is missing."""
    report = twilio.parse_report(form)
    if report is None:
        return False
    _record_report(runtime, message_id, report, twilio.CHANNEL)
    return True


def _record_report(runtime: Runtime, message_id: str, report: DeliveryReport, provider: str) -> None:
    """Apply `provider`'s report on our SMS `message_id`; one not ours changes nothing."""
    days = runtime.config.history_days
    if outbound.record_report(runtime.redis, runtime.queues, message_id, report, provider, days) == "unknown":
        # Not its id: one sent through the phone's own API is free text, and may hold a number.
        log.info("%s report for a message that is not ours", provider)


def _signed(runtime: Runtime) -> bool:
    checker = twilio.checker(runtime.config)
    return checker.is_valid(request.full_path, request.form, request.headers.get("X-Twilio-Signature", ""))


def _count(runtime: Runtime, name: str) -> None:
    """Count a refused request for the console; never fail the answer over it."""
    try:
        stats.record(runtime.redis, name)
    except RedisError:
        pass


def _runtime_serving(provider: str) -> Runtime:
    """The app's Runtime, if `provider` is on; else the request ends in a 404."""
    runtime = Runtime.of(current_app)
    if provider not in runtime.config.sms_providers:
        abort(404)
    return runtime


def _accept(runtime: Runtime, text: InboundText) -> None:
    try:
        intake.accept(runtime, text)
    except RedisError as e:
        # Stored or not, we cannot promise it: make the provider retry (Twilio: its fallback
        # URL). One line, not a traceback: an outage refuses every text, and the cause is all
        # that helps.
        log.warning("could not store %s from %s: %s", text.message_id, mask(text.sender), type(e).__name__)
        abort(503)


@bp.post(twilio.SMS_PATH)
def twilio_sms() -> Response:
    runtime = _runtime_serving(twilio.CHANNEL)
    if not _signed(runtime):  # reading the form answers 413 to a body over MAX_BODY_BYTES
        log.warning("rejected a webhook with a bad or missing signature")
        _count(runtime, "rejected")
        abort(403)
    try:
        text = twilio.parse_text(request.form)
    except MalformedWebhook as e:
        log.warning("refused a Twilio text: %s", e)  # the reasons never quote the form
        _count(runtime, "malformed")
        abort(400, str(e))
    _accept(runtime, text)
    return Response(twilio.EMPTY_TWIML, 200, content_type="application/xml")


@bp.post(twilio.STATUS_PATH)
def twilio_status() -> Response:
    runtime = _runtime_serving(twilio.CHANNEL)
    if not _signed(runtime):
        log.warning("rejected a status callback with a bad or missing signature")
        abort(403)
    if not record_status(runtime, request.args.get("m", ""), request.form):
        abort(400, "MessageSid and MessageStatus are required")
    return Response("", 200)


@bp.post(android.PATH)
def android_webhook() -> Response:
    """Every event the Android app posts: a text received, a report on an SMS we sent, or one
    Kabootar does not use (acknowledged, so the app does not retry it for two days)."""
    runtime = _runtime_serving(android.CHANNEL)
    config = runtime.config
    body = request.get_data(cache=False)  # the raw bytes, as signed (over MAX_BODY_BYTES: a 413)
    timestamp, signature = request.headers.get("X-Timestamp", ""), request.headers.get("X-Signature", "")
    if not android.verify(config.android_webhook_signing_key, body, timestamp, signature):
        log.warning("rejected an Android webhook with a bad, missing or stale signature")
        _count(runtime, "rejected")
        abort(403)
    try:
        event = android.parse(body, config.android_country)
    except MalformedWebhook as e:
        log.warning("refused an Android webhook: %s", e)  # the reasons never quote the payload
        _count(runtime, "malformed")
        abort(400, str(e))
    if isinstance(event, InboundText):
        _accept(runtime, event)
    elif event is not None:
        _record_report(runtime, event.provider_id, event, android.CHANNEL)
    return Response("", 200)
