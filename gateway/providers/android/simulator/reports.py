"""The webhooks the simulated phone posts about an SMS it took: `sms:sent`, then
`sms:delivered` or `sms:failed`, signed as the app signs them (`webhooks.sign`)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis

from gateway.config import Config
from gateway.providers.android import webhooks
from gateway.providers.simulated import handsets, reporter

DEVICE_ID = "ffffffffkabootar0000000000000001"  # the simulated phone's, as the app names devices
WEBHOOK_ID = "kabootar-simulator"
SENT_AFTER_SECONDS = 0.05
DELIVERED_AFTER_SECONDS = 0.2


def event_id() -> str:
    """A delivery id as the app makes them (nanoid: 21 URL-safe characters)."""
    return secrets.token_urlsafe(16)[:21]


def body(event: str, payload: dict[str, object]) -> bytes:
    """A webhook's JSON body, as the app serialises it."""
    doc = {
        "deviceId": DEVICE_ID,
        "event": event,
        "id": event_id(),
        "payload": payload,
        "webhookId": WEBHOOK_ID,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def headers(signing_key: str, signed: bytes) -> dict[str, str]:
    """The headers the app sends with a webhook: JSON, and its signature."""
    timestamp = str(int(time.time()))
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "X-Timestamp": timestamp,
        "X-Signature": webhooks.sign(signing_key, signed, timestamp),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class _Report:
    """The webhooks still to post for one SMS to one number, in order."""

    redis: Redis
    url: str
    signing_key: str
    message_id: str
    recipient: str
    failure: str | None
    steps: list[str] = field(default_factory=lambda: ["sms:sent", "sms:delivered"])

    def post_next(self, poster: reporter.Poster) -> float | None:
        event = self.steps.pop(0)
        payload: dict[str, object] = {"messageId": self.message_id, "recipient": self.recipient}
        payload.update(sender=None, simNumber=1)
        if event == "sms:sent":
            payload.update(partsCount=1, sentAt=_now())
        elif event == "sms:delivered":
            payload["deliveredAt"] = _now()
        else:
            payload.update(reason=self.failure, failedAt=_now())
        handsets.set_status(self.redis, self.message_id, event.split(":", 1)[1])
        signed = body(event, payload)
        reporter.post_quietly(poster, self.url, signed, headers(self.signing_key, signed))
        return DELIVERED_AFTER_SECONDS if self.steps else None


def schedule(redis: Redis, config: Config, message_id: str, numbers: list[str], failures: dict[str, str],
             stall: float) -> None:  # fmt: skip
    """Post each number's webhooks a moment from now (after `stall`, a slow network's delay)."""
    url = config.public_url + webhooks.PATH
    for number in numbers:
        failure = failures.get(number)
        report = _Report(redis, url, config.android_webhook_signing_key, message_id, number, failure)
        if failure:
            report.steps = ["sms:failed"]
        reporter.reporter().schedule(stall + SENT_AFTER_SECONDS, report)
