"""A simulated phone texting the gateway: the webhook Twilio would post for its text."""

from __future__ import annotations

import secrets

from gateway.config import Config
from gateway.providers.twilio import webhooks
from gateway.providers.twilio.simulator.api import API_VERSION


def text_webhook(config: Config, number: str, body: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(path, form, headers) of the signed webhook Twilio would send for a text from `number`."""
    form = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": config.twilio_account_sid,
        "From": number,
        "To": config.twilio_from or "",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }
    signature = webhooks.checker(config).sign(webhooks.SMS_PATH, form)
    return webhooks.SMS_PATH, form, {"X-Twilio-Signature": signature}
