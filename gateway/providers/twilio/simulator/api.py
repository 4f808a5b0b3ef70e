"""The Twilio simulator: Twilio's Messages API under /dev/twilio, for tests and offline runs.

It speaks Twilio's wire format (api.twilio.com's 2010-04-01 Messages resource, as in
Twilio's OpenAPI description): form fields in, Basic auth with the account sid and auth
token, a 201 with Twilio's message JSON out, Twilio's error JSON for bad input. A second
or so later it posts signed status callbacks (`sent`, then `delivered`) to the
StatusCallback URL, like Twilio. Tests can make it fail the next N requests, or every
request for a while (an outage: 429s and 500s until a given time), or answer slowly.

It is "Twilio", not Kabootar: its data lives under keys.SIMULATOR_PREFIX, and even here
a phone number is never stored: a phone's inbox is keyed by a SHA-256 of its number.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.datastructures import Authorization

from gateway import phones, segments
from gateway.config import Config
from gateway.providers.simulated import controls, handsets
from gateway.providers.twilio.simulator import callbacks, store
from gateway.runtime import Runtime

bp = Blueprint("twilio_simulator", __name__, url_prefix="/dev/twilio")

API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ERRORS = {
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "Invalid 'To' Phone Number"),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
HTTP_CODES = {429: 20429, 500: 20500, 503: 20500}
# Twilio's own messages for these quote the number they refuse (so must ours: the gateway
# has to keep it out of logs, job data and the console, see phones.redact).
QUOTES_NUMBER = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: (
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
    ),
}


def error_json(
    code: int, status: int | None = None, message: str | None = None
) -> tuple[int, dict[str, Any]]:
    """An error answer in Twilio's shape: (HTTP status, {code, message, more_info, status})."""
    http, text = ERRORS.get(code, (status or 400, "Error"))
    http = status or http
    body = {
        "code": code,
        "message": message or text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http,
    }
    return http, body


def twilio_error(code: int, status: int | None = None, message: str | None = None) -> Response:
    """`error_json` as a Flask response."""
    return _response(*error_json(code, status, message))


def _response(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


WWW_AUTHENTICATE = 'Basic realm="Twilio API"'


def basic_credentials(auth: Authorization | None) -> tuple[str, str] | None:
    """Basic auth's user and password, if the request carried them (werkzeug's parse of the
    Authorization header, for the Flask view and the fast path alike)."""
    if auth is None or auth.type != "basic":
        return None
    return (auth.username or "", auth.password or "")


def _authorised(account_sid: str, credentials: tuple[str, str] | None, config: Config) -> bool:
    return bool(
        credentials
        and config.twilio_auth_token  # never an empty password
        and secrets.compare_digest(credentials[0], config.twilio_account_sid)
        and secrets.compare_digest(credentials[1], config.twilio_auth_token)
        and account_sid == config.twilio_account_sid
    )


def _message_json(
    account_sid: str, sid: str, form: Mapping[str, str], created: datetime, cost: int
) -> dict[str, Any]:
    service = form.get("MessagingServiceSid") or None
    sender = form.get("From") or None
    date = format_datetime(created)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": form.get("Body", ""),
        "date_created": date,
        "date_sent": None,
        "date_updated": date,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        # A Messaging Service picks the sender later, so Twilio reports 0 segments then.
        "num_segments": "0" if service and not sender else str(cost),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service and not sender else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": form.get("To", ""),
        "uri": f"{uri}.json",
    }


def _refusal(form: Mapping[str, str], to: str, number: str) -> tuple[int, dict[str, Any]] | None:
    """Twilio's 400 for a request it cannot take as written, if it is one."""
    if not to:
        return error_json(21604)
    if not _E164.match(number):
        return error_json(21211, message=QUOTES_NUMBER[21211].format(to=to))
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return error_json(21603)
    body = form.get("Body", "")
    if not body:
        return error_json(21602)
    if len(body) > 1600:
        return error_json(21617)
    return None


def create(
    runtime: Runtime,
    account_sid: str,
    form: Mapping[str, str],
    credentials: tuple[str, str] | None,
    arrived: float,
) -> tuple[int, dict[str, Any]]:
    """Twilio's answer to a Messages.json POST (`credentials`: Basic auth's user and
    password, if given; `arrived`: when the request came, which a rate limit counts), as
    (HTTP status, JSON body); an accepted message is stored and its callbacks scheduled.
    Shared by the Flask view and the WSGI fast path (`fast.py`)."""
    redis, config = runtime.redis, runtime.config
    authorised = _authorised(account_sid, credentials, config)
    to, body = form.get("To", "").strip(), form.get("Body", "")
    prefix, number = phones.split_prefix(to)  # "whatsapp:+98…": Twilio's WhatsApp channel
    refused = _refusal(form, to, number)
    callback = form.get("StatusCallback")
    cost = segments.segments(body)
    sid = "SM" + secrets.token_hex(16)
    message = _message_json(account_sid, sid, form, datetime.now(UTC), cost)
    accepted = None
    if refused is None:  # stored in the same round trip, if no failure comes first
        channel = f"twilio:{prefix}" if prefix else "twilio"
        accepted = store.Accepted(sid, number, body, cost, channel, reported=bool(callback))
    failure, stall = store.arrive(redis, authorised, arrived, cost, to, accepted)
    if not authorised:
        return error_json(20003)
    if failure and failure[0]:
        return error_json(HTTP_CODES.get(failure[0], failure[0]), status=failure[0])
    if refused is not None:
        return refused
    code = failure[1] if failure else None
    if code and not 30000 <= code < 31000:
        quoted = QUOTES_NUMBER.get(code)
        return error_json(code, message=quoted.format(to=to) if quoted else None)
    # Delivery errors (30003-30008 …) come from the carrier: accepted now, reported later.
    outcome = (
        ("undelivered" if code in range(30003, 30009) else "failed", code) if code else ("delivered", None)
    )
    if callback:
        fields = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": account_sid,
            "From": form.get("From", ""),
            "To": to,
            "ApiVersion": API_VERSION,
        }
        steps: list[tuple[str, int | None]] = [("sent", None), outcome]
        report = callbacks.Report(redis, config.twilio_auth_token, callback, fields, steps)
        callbacks.schedule(stall + callbacks.SENT_AFTER_SECONDS, report)
    if stall:
        time.sleep(stall)  # accepted, but the answer is slow: a client may give up or die meanwhile
    return 201, message


@bp.post(f"/{API_VERSION}/Accounts/<account_sid>/Messages.json")
def create_message(account_sid: str) -> Response:
    """The API through Flask: what the fast path (`fast.py`) leaves to it (a multipart or
    JSON body, repeated fields, …)."""
    arrived = time.time()  # what a rate limit counts: when the request came, not when we got to it
    credentials = basic_credentials(request.authorization)
    return _response(*create(Runtime.of(current_app), account_sid, request.form, credentials, arrived))


@bp.post("/control/fail")
@controls.hook
def control_fail() -> Response:
    """Make the next `count` requests fail: `status=429|500`, or `code=<Twilio error code>`."""
    try:
        count = int(request.form.get("count", "1"))
        status = int(request.form.get("status") or 0)
        code = int(request.form.get("code") or 0)
    except ValueError:
        return controls.refused(ValueError("count, status and code are numbers"))
    if not (status or code):
        return controls.refused(ValueError("give status=429|500 or code=<Twilio error code>"))
    store.set_failure(Runtime.of(current_app).redis, count, status, code)
    return controls.ok()


@bp.post("/control/outage")
@controls.hook
def control_outage() -> Response:
    """Fail every request for `seconds` (at most 3600; 0 ends it), answering `statuses` in
    turn (comma-separated HTTP statuses, 429,500 by default), then recover."""
    try:
        statuses = [int(s) for s in request.form.get("statuses", "429,500").split(",") if s.strip()]
        store.set_outage(Runtime.of(current_app).redis, controls.seconds("60", 3600.0), statuses)
    except ValueError:
        return controls.refused(ValueError("seconds is a number, statuses HTTP error statuses"))
    return controls.ok()


controls.add_delay(bp, store.set_delay)


@bp.post("/control/reset")
@controls.hook
def control_reset() -> Response:
    """Forget every simulated message, counter, pending failure and outage."""
    handsets.reset(Runtime.of(current_app).redis)
    return controls.ok()
