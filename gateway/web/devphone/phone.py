"""GET /dev/phone and POST /dev/phone/send: a phone in a web page, for development.

Sending goes through the real webhook: the simulator builds the request its provider
would send, signed exactly as the provider signs it, and the page delivers it to the
webhook, so the signature check, storage, queue and workers all run.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf

from gateway import phones
from gateway.ops import auth
from gateway.providers.twilio.simulator import phones as simulated_phones
from gateway.providers.twilio.simulator import store as simstore
from gateway.runtime import Runtime

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


def deliver(number: str, body: str) -> int:
    """Text `body` from `number` to our webhook, signed as the provider would; returns the HTTP status."""
    runtime = Runtime.of(current_app)
    path, form, headers = simulated_phones.text_webhook(runtime.config, number, body)
    # In-process dispatch: the full request cycle runs (signature, store, queue) without
    # the web worker waiting on itself over the network.
    with current_app.test_client() as client:
        response = client.post(path, data=form, headers=headers)
    simstore.record_texted(runtime.redis, number, body, response.status_code)
    return response.status_code


def _conversation(number: str) -> list[dict[str, object]]:
    return simstore.conversation(Runtime.of(current_app).redis, number)


@bp.get("/dev/phone")
def phone() -> ResponseReturnValue:
    number = _number(request.args.get("number", DEFAULT_NUMBER))
    return render_template(
        "devphone/phone.html",
        number=number,
        status=request.args.get("status"),
        gateway_number=Runtime.of(current_app).config.twilio_from,
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
    status = deliver(number, body)
    return redirect(url_for("devphone.phone", number=number, status=str(status)), code=303)
