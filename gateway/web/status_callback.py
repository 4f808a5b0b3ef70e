"""POST /twilio/status: Twilio's delivery status callbacks for the SMS we send.

Our StatusCallback URL carries our message id (`?m=<id>`), so a callback settles its
message even when the worker that sent it died before recording Twilio's answer. The
query is part of what Twilio signs, hence the check over `request.full_path`.

Callbacks repeat and arrive out of order; `outbound.record_callback` only moves a
message forward. Unknown messages still get 200, or Twilio would retry them forever.

Twilio posts two or three callbacks for every SMS sent, so the ordinary ones are
answered in `webhook_wsgi.py` before Flask is entered, with the same `record` below;
this view answers the rest (bad signatures, missing fields, Redis away).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Blueprint, Response, abort, request
from redis import Redis

from gateway.outbox import outbound
from gateway.web.extension import kabootar

log = logging.getLogger(__name__)
bp = Blueprint("status_callback", __name__)


def record(redis: Redis, message_id: str, form: Mapping[str, str]) -> bool:
    """Settle our message `message_id` (the `m` of the URL) with a signed callback's
    fields; False, recording nothing, when MessageSid or MessageStatus is missing."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    twilio_status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not sid or not twilio_status:
        return False
    if not (message_id.isascii() and message_id.isalnum() and len(message_id) <= 64):
        return True  # not one of ours: our ids are short hex strings
    result = outbound.record_callback(redis, message_id, sid[:64], twilio_status, form.get("ErrorCode", ""))
    if result == "unknown":
        log.info("status callback for unknown message %s", message_id[:64])
    return True


@bp.post("/twilio/status")
def status() -> Response:
    ext = kabootar()
    if not ext.signatures.is_valid(
        request.full_path, request.form, request.headers.get("X-Twilio-Signature", "")
    ):
        log.warning("rejected a status callback with a bad or missing signature")
        abort(403)
    if not record(ext.runtime.redis, request.args.get("m", ""), request.form):
        abort(400, "MessageSid and MessageStatus are required")
    return Response("", 200)
