"""The app's webhooks: their signature, and their JSON read into neutral records.

Every webhook is a POST of JSON to one URL (`PATH`): {"id", "event", "deviceId",
"webhookId", "payload"}. `id` names this event's delivery: the app sends the same id
again when it retries (10 s, 20 s, 40 s … for two days), so it is what makes a text
exactly-once. The payload's `messageId` of a received SMS is made from its content and
is not unique (two people texting "hi" share one), so it is never used to dedupe.

The app signs the raw body with the signing key set in its settings: `X-Signature` is
the hex HMAC-SHA256 of the body followed by `X-Timestamp` (unix seconds, taken at each
attempt). A timestamp more than MAX_SKEW_SECONDS from ours is refused: a captured request
cannot be replayed later.

Reports (`sms:sent`, `sms:delivered`, `sms:failed`, `sms:cancelled`) name our SMS by the id
we gave it when sending (see `api.py`), so they settle it directly; a report on an SMS
Kabootar did not send (someone used the phone's API directly) names an id the outbox does
not know, and changes nothing there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from gateway import phones
from gateway.providers.android import vocabulary
from gateway.providers.records import FAILED, DeliveryReport, InboundText, MalformedWebhook

PATH = "/android/webhook"
MAX_SKEW_SECONDS = 300
CHANNEL = "android"
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INTERNATIONAL = re.compile(r"\+[1-9]")  # a number with its country code: read alike in any region


def sign(key: str, body: bytes, timestamp: str) -> str:
    """The app's signature of `body` sent at `timestamp`."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def verify(key: str, body: bytes, timestamp: str, signature: str, now: float | None = None) -> bool:
    """Whether the request is signed with `key`, and was sent within MAX_SKEW_SECONDS."""
    if (
        not key
        or not signature
        or not timestamp.isascii()
        or not timestamp.isdecimal()
        or len(timestamp) > 12
    ):
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(sign(key, body, timestamp), signature.strip().lower())


def parse(body: bytes, country: str = "") -> InboundText | DeliveryReport | None:
    """What a signed webhook says: a text received, a report on an SMS (its `provider_id` is
    the id we sent it under), or None for an event Kabootar does not use (acknowledged and
    ignored). Raises MalformedWebhook.

    `country` (ISO 3166 code) reads a sender number written without its country code, when
    the phone does not say its own number."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedWebhook("the body is not a JSON object")
    event, event_id, payload = doc.get("event"), doc.get("id"), doc.get("payload")
    if not isinstance(event, str) or not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise MalformedWebhook("event and id are required")
    if not isinstance(payload, dict):
        raise MalformedWebhook("payload is required")
    if event == vocabulary.RECEIVED:
        return _text(event_id, payload, country)
    if event in vocabulary.REPORTS:
        return _report(event, payload)
    return None


def _text(event_id: str, payload: dict[str, Any], country: str) -> InboundText:
    # `sender` since app 1.40; `phoneNumber` before.
    sender, message = payload.get("sender") or payload.get("phoneNumber"), payload.get("message")
    if not isinstance(sender, str) or not isinstance(message, str):
        raise MalformedWebhook("sender and message are required")
    region = None
    if not _INTERNATIONAL.match(sender.strip()):  # only a national number needs the phone's country
        device = payload.get("recipient")
        region = country or (phones.region_of(device) if isinstance(device, str) else None)
    number = phones.to_e164(sender, region)
    if number is None:
        raise MalformedWebhook("sender is not a phone number Kabootar can read")
    return InboundText(message_id=f"{CHANNEL}:{event_id}", sender=number, body=message, channel=CHANNEL)


def _report(event: str, payload: dict[str, Any]) -> DeliveryReport | None:
    message_id = payload.get("messageId")
    if not isinstance(message_id, str):
        return None  # no SMS named: nothing to settle
    status, code = vocabulary.REPORTS[event]
    reason = payload.get("reason")
    if status == FAILED and not code and isinstance(reason, str):
        code = vocabulary.failure_code(reason)
    outcome = vocabulary.report_outcome(event, code)
    return DeliveryReport(provider_id=message_id, status=status, code=code, outcome=outcome)
