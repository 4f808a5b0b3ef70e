"""A simulated phone texting the gateway through Twilio: the webhook Twilio would post."""

from __future__ import annotations

import secrets
import urllib.parse

from gateway.config import Config
from gateway.providers.twilio import webhooks
from gateway.providers.twilio.simulator.api import API_VERSION


def text_webhook(config: Config, number: str, body: str) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the signed webhook Twilio would send for a text from `number`."""
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
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": webhooks.checker(config).sign(webhooks.SMS_PATH, form),
    }
    return webhooks.SMS_PATH, urllib.parse.urlencode(form).encode(), headers
