"""GET /dev/phone and POST /dev/phone/send: a phone in a web page, for development.

Sending goes through the real webhook: the page builds the form Twilio would send,
signs it with the auth token exactly as Twilio does, and delivers it to
/twilio/sms, so the signature check, storage, queue and workers all run.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf

from gateway import phones
from gateway.ops import auth
from gateway.providers.twilio import simstore
from gateway.web.extension import kabootar

bp = Blueprint(
    "devphone",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dev/phone/static",
)

DEFAULT_NUMBER = "+14155550100"


def _number(raw: str) -> str:
    """The phone number typed or linked: a "+" in a URL's query arrives as a space."""
    raw = raw.strip()
    return phones.normalize(raw if raw.startswith("+") or not raw else "+" + raw)


def deliver_as_twilio(number: str, body: str) -> int:
    """Send `body` from `number` to our webhook as a signed Twilio request; returns the HTTP status."""
    config = kabootar().runtime.config
    form = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": config.twilio_account_sid,
        "From": number,
        "To": config.twilio_from or "",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    signature = kabootar().signatures.sign("/twilio/sms", form)
    # In-process dispatch: the full request cycle runs (signature, store, queue) without
    # the web worker waiting on itself over the network.
    with current_app.test_client() as client:
        response = client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    simstore.record_texted(kabootar().runtime.redis, number, body, response.status_code)
    return response.status_code


def _conversation(number: str) -> list[dict[str, object]]:
    return simstore.conversation(kabootar().runtime.redis, number)


@bp.get("/dev/phone")
def phone() -> ResponseReturnValue:
    number = _number(request.args.get("number", DEFAULT_NUMBER))
    return render_template(
        "devphone/phone.html",
        number=number,
        status=request.args.get("status"),
        gateway_number=kabootar().runtime.config.twilio_from,
        messages=_conversation(number),
        csrf_token=generate_csrf,
    )


@bp.get("/dev/phone/messages")
def messages() -> ResponseReturnValue:
    """The conversation as JSON, for the page's live refresh."""
    number = _number(request.args.get("number", ""))
    return jsonify(messages=_conversation(number) if number else [])


@bp.post("/dev/phone/send")
def send() -> ResponseReturnValue:
    # Another site's page could otherwise text a developer's gateway as anyone.
    auth.check_csrf()
    number = _number(request.form.get("number", ""))
    body = request.form.get("body", "")
    if not number or not body.strip():
        return redirect(url_for("devphone.phone", number=number, status="empty"), code=303)
    status = deliver_as_twilio(number, body)
    return redirect(url_for("devphone.phone", number=number, status=str(status)), code=303)
