"""GET /dev/phone and POST /dev/phone/send: a phone in a web page, for development.

Sending goes through the real webhook: the simulator builds the request its provider
would send, signed exactly as the provider signs it, and the page delivers it to the
webhook, so the signature check, storage, queue and workers all run. Opening the page
makes this browser's session the developer's: only it may send, or drive the simulators'
control hooks (`gateway.providers.simulated.controls`).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from redis import Redis

from gateway import phones
from gateway.config import Config
from gateway.providers.android.simulator import phones as android_phones
from gateway.providers.simulated import controls, handsets
from gateway.providers.twilio.simulator import keywords as twilio_keywords
from gateway.providers.twilio.simulator import phones as twilio_phones
from gateway.runtime import Runtime

bp = Blueprint(
    "devphone",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dev/phone/static",
)

DEFAULT_NUMBER = "+14155550100"
NOT_A_NUMBER = "not a phone number: write it with its country code, such as +14155550100"


def _number(raw: str) -> str | None:
    """The phone number typed or linked, in E.164; None when it is no phone number. A "+"
    in a URL's query arrives as a space, so a number without one is read as having it.
    Letters are refused (`phones.to_e164`): phonenumbers would drop them, or read them as a
    keypad's digits."""
    raw = raw.strip()
    return phones.to_e164(raw if raw.startswith("+") else "+" + raw)


# How a simulated phone texts the gateway, by channel: the signed webhook its provider sends.
TEXTERS = {"twilio": twilio_phones.text_webhook, "android": android_phones.text_webhook}
# What a provider itself answers to a text (Twilio: STOP, START, HELP); a phone's SIM, nothing.
CARRIER_ANSWERS: dict[str, Callable[[Redis, str, str], None]] = {"twilio": twilio_keywords.answer}


def channels(config: Config) -> list[str]:
    """The channels a simulated phone can text through: the simulated providers."""
    return [name for name in config.sms_providers if config.simulated(name)]


def deliver(number: str, body: str, channel: str) -> int:
    """Text `body` from `number` to our webhook, signed as `channel`'s provider would; returns
    the HTTP status."""
    runtime = Runtime.of(current_app)
    path, data, headers = TEXTERS[channel](runtime.config, number, body)
    # In-process dispatch: the full request cycle runs (signature, store, queue) without
    # the web worker waiting on itself over the network.
    with current_app.test_client() as client:
        response = client.post(path, data=data, headers=headers)
    handsets.record_texted(runtime.redis, number, body, response.status_code, channel)
    if answer := CARRIER_ANSWERS.get(channel):
        answer(runtime.redis, number, body)
    return response.status_code


def _conversation(number: str) -> list[dict[str, object]]:
    return handsets.conversation(Runtime.of(current_app).redis, number)


def _page(typed: str, status: str | None, channel: str, code: int = 200) -> ResponseReturnValue:
    """The phone for the number `typed` (the page says so when it is no phone number)."""
    number = _number(typed)
    offered = channels(Runtime.of(current_app).config)
    html = render_template(
        "devphone/phone.html",
        number=number or typed,
        status="number" if number is None else status,
        not_a_number=NOT_A_NUMBER,
        channels=offered,
        channel=channel if channel in offered else offered[0],
        messages=_conversation(number) if number else [],
        csrf_token=generate_csrf,
    )
    return html, 400 if number is None else code


@bp.get("/dev/phone")
def phone() -> ResponseReturnValue:
    controls.open_dev_session()
    typed = request.args.get("number", DEFAULT_NUMBER)
    return _page(typed, request.args.get("status"), request.args.get("channel", ""))


@bp.get("/dev/phone/messages")
def messages() -> ResponseReturnValue:
    """The conversation as JSON, for the page's live refresh."""
    number = _number(request.args.get("number", ""))
    if number is None:
        return jsonify(error=NOT_A_NUMBER, messages=[]), 400
    return jsonify(messages=_conversation(number))


@bp.post("/dev/phone/send")
def send() -> ResponseReturnValue:
    # Another site's page (or a visitor who never opened the phone) could otherwise text
    # a developer's gateway as anyone.
    refused = controls.refusal()
    if refused is not None:
        return refused
    typed = request.form.get("number", "")
    body = request.form.get("body", "")
    offered = channels(Runtime.of(current_app).config)
    channel = request.form.get("channel") or offered[0]
    if channel not in offered:
        return redirect(url_for("devphone.phone", number=typed, status="channel"), code=303)
    if not typed.strip() or not body.strip():
        return redirect(url_for("devphone.phone", number=typed, channel=channel, status="empty"), code=303)
    number = _number(typed)
    if number is None:
        return _page(typed, "number", channel)
    status = deliver(number, body, channel)
    return redirect(url_for("devphone.phone", number=number, channel=channel, status=str(status)), code=303)
