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
from gateway.config import Config
from gateway.ops import auth
from gateway.providers.android.simulator import phones as android_phones
from gateway.providers.simulated import handsets
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


def _number(raw: str) -> str:
    """The phone number typed or linked: a "+" in a URL's query arrives as a space."""
    raw = raw.strip()
    return phones.normalize(raw if raw.startswith("+") or not raw else "+" + raw)


# How a simulated phone texts the gateway, by channel: the signed webhook its provider sends.
TEXTERS = {"twilio": twilio_phones.text_webhook, "android": android_phones.text_webhook}


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
    return response.status_code


def _conversation(number: str) -> list[dict[str, object]]:
    return handsets.conversation(Runtime.of(current_app).redis, number)


@bp.get("/dev/phone")
def phone() -> ResponseReturnValue:
    number = _number(request.args.get("number", DEFAULT_NUMBER))
    config = Runtime.of(current_app).config
    offered = channels(config)
    chosen = request.args.get("channel", "")
    return render_template(
        "devphone/phone.html",
        number=number,
        status=request.args.get("status"),
        channels=offered,
        channel=chosen if chosen in offered else offered[0],
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
    offered = channels(Runtime.of(current_app).config)
    channel = request.form.get("channel") or offered[0]
    if channel not in offered:
        return redirect(url_for("devphone.phone", number=number, status="channel"), code=303)
    if not number or not body.strip():
        return redirect(url_for("devphone.phone", number=number, channel=channel, status="empty"), code=303)
    status = deliver(number, body, channel)
    return redirect(url_for("devphone.phone", number=number, channel=channel, status=str(status)), code=303)
