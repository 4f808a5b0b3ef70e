"""POST /twilio/status: Twilio's delivery status callbacks for the SMS we send.

Our StatusCallback URL carries our message id (`?m=<id>`), so a callback settles its
message even when the worker that sent it died before recording Twilio's answer. The
query is part of what Twilio signs, hence the check over `request.full_path`.

Callbacks repeat and arrive out of order; `outbound.record_callback` only moves a
message forward. Unknown messages still get 200, or Twilio would retry them forever.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request

from gateway import outbound
from gateway.extension import kabootar

log = logging.getLogger(__name__)
bp = Blueprint("status_callback", __name__)


@bp.post("/twilio/status")
def status() -> Response:
    ext = kabootar()
    if not ext.signatures.is_valid(
        request.full_path, request.form, request.headers.get("X-Twilio-Signature", "")
    ):
        log.warning("rejected a status callback with a bad or missing signature")
        abort(403)
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    twilio_status = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    if not sid or not twilio_status:
        abort(400, "MessageSid and MessageStatus are required")
    message_id = request.args.get("m", "")
    if not (message_id.isascii() and message_id.isalnum() and len(message_id) <= 64):
        return Response("", 200)  # not one of ours: our ids are short hex strings
    result = outbound.record_callback(
        ext.runtime.redis, message_id, sid[:64], twilio_status, request.form.get("ErrorCode", "")
    )
    if result == "unknown":
        log.info("status callback for unknown message %s", message_id[:64])
    return Response("", 200)
