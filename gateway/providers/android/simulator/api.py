"""The Android simulator: the local-server API of SMS Gateway for Android under /dev/android,
for tests and offline runs (`SMS_PROVIDERS` names android with no ANDROID_GATEWAY_URL).

It answers as the app does (its MessagesRoutes): Basic auth with the configured user and
password; POST /message (or /messages) takes {"id"?, "textMessage": {"text"}, "phoneNumbers"}
and answers 202 with the message's state; an id it already holds is 409; bad input is 400
{"message": …}. Like the app, it checks the number only when sending: a number that is not
a mobile one fails later, by webhook. A moment after taking an SMS it posts the signed
webhooks the app posts to PUBLIC_URL/android/webhook: `sms:sent`, then `sms:delivered` (or
`sms:failed` with the app's reason).

Failure injection (tests and the dev phone): the phone offline (the API answers 503: a
real offline phone does not answer at all, and the sender treats both alike), the SIM out
of credit (SMS taken, then `sms:failed` RESULT_ERROR_GENERIC_FAILURE), a slow network.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from flask import Blueprint, Response, current_app, jsonify, request

from gateway import segments
from gateway.config import Config
from gateway.providers.android import webhooks
from gateway.providers.android.simulator import reports, store
from gateway.providers.simulated import controls, handsets
from gateway.runtime import Runtime

bp = Blueprint("android_simulator", __name__, url_prefix="/dev/android")

CHANNEL = webhooks.CHANNEL


def _error(status: int, message: str) -> Response:
    response = jsonify(message=message)
    response.status_code = status
    return response


def _authorised(config: Config) -> bool:
    auth = request.authorization
    return bool(
        auth
        and auth.type == "basic"
        and config.android_gateway_password  # never an empty password
        and secrets.compare_digest(auth.username or "", config.android_gateway_user)
        and secrets.compare_digest(auth.password or "", config.android_gateway_password)
    )


def _mobile(number: str) -> bool:
    """What the app checks before sending: a valid mobile number."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    kind = phonenumbers.number_type(parsed)
    mobile = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return phonenumbers.is_valid_number(parsed) and kind in mobile


def _state(message_id: str, numbers: list[str], now: datetime) -> dict[str, Any]:
    return {
        "id": message_id,
        "deviceId": reports.DEVICE_ID,
        "state": "Pending",
        "isHashed": False,
        "isEncrypted": False,
        "recipients": [{"phoneNumber": n, "state": "Pending", "error": None} for n in numbers],
        "states": {"Pending": now.isoformat()},
    }


@bp.post("/message")
@bp.post("/messages")
def send_message() -> Response:
    now = time.time()
    runtime = Runtime.of(current_app)
    redis, config = runtime.redis, runtime.config
    offline, no_credit, stall = store.arrive(redis, now)
    if offline:
        return _error(503, "the phone is offline")
    if not _authorised(config):
        response = _error(401, "Unauthorized")
        response.headers["WWW-Authenticate"] = 'Basic realm="Access to SMS Gateway"'
        return response
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        return _error(400, "Failed to convert request body")
    content = doc.get("textMessage")
    text = content.get("text") if isinstance(content, dict) else doc.get("message")
    numbers, given_id = doc.get("phoneNumbers"), doc.get("id")
    if not isinstance(text, str) or not text:
        return _error(400, "Text message is empty")
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
        return _error(400, "Empty phone numbers list")
    message_id = given_id if isinstance(given_id, str) and given_id else secrets.token_urlsafe(15)
    cost = segments.segments(text)
    if not store.take(redis, message_id, cost, now):
        return _error(409, f"Message with id {message_id} already exists")
    pipe = redis.pipeline(transaction=False)
    failures: dict[str, str] = {}
    for number in numbers:
        if not _mobile(number):
            failures[number] = "Invalid phone number"
        elif no_credit:
            failures[number] = "RESULT_ERROR_GENERIC_FAILURE (Generic failure cause)"
        else:
            handsets.deliver(pipe, CHANNEL, message_id, number, text, cost, now)
    pipe.execute()
    reports.schedule(redis, config, message_id, numbers, failures, stall)
    if stall:
        time.sleep(stall)  # taken, but the answer is slow: a client may give up or die meanwhile
    response = jsonify(_state(message_id, numbers, datetime.now(UTC)))
    response.status_code = 202
    return response


@bp.get("/health")
def health() -> Response:
    """The app's health check (no auth): "pass", or no answer while the phone is offline."""
    offline, _, _ = store.arrive(Runtime.of(current_app).redis, time.time())
    if offline:
        return _error(503, "the phone is offline")
    return jsonify(status="pass", version="simulator", checks={})


@bp.post("/control/offline")
@controls.hook
def control_offline() -> Response:
    """The phone answers nothing for `seconds` (at most 3600; 0: back online)."""
    try:
        store.set_offline(Runtime.of(current_app).redis, controls.seconds("60", 3600.0))
    except controls.BadControl as e:
        return controls.refused(e)
    return controls.ok()


@bp.post("/control/credit")
@controls.hook
def control_credit() -> Response:
    """`credit=0`: the SIM is out of credit, every SMS fails; `credit=1`: topped up."""
    store.set_credit(Runtime.of(current_app).redis, request.form.get("credit", "1") != "0")
    return controls.ok()


controls.add_delay(bp, store.set_delay)
