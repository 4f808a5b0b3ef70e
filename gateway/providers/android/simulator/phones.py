"""A simulated phone texting the gateway through the Android phone: the `sms:received`
webhook the app would post, signed with its key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from gateway.config import Config
from gateway.providers.android import webhooks
from gateway.providers.android.simulator import reports

DEVICE_NUMBER = "+15005550007"  # the simulated phone's own number (the app reports it as `recipient`)


def text_webhook(config: Config, number: str, body: str) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the signed webhook the app would send for a text from `number`."""
    payload: dict[str, object] = {
        # The app's messageId is made from the content, so two texts alike share one.
        "messageId": hashlib.sha256(f"{number}{body}".encode()).hexdigest()[:16],
        "message": body,
        "sender": number,
        "recipient": DEVICE_NUMBER,
        "simNumber": 1,
        "receivedAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    signed = reports.body("sms:received", payload)
    return webhooks.PATH, signed, reports.headers(config.android_webhook_signing_key, signed)
