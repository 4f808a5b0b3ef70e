"""The simulator's status callbacks: `sent`, then the final status, posted to the
StatusCallback URL a moment after the API took the SMS, signed as Twilio signs them."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from redis import Redis

from gateway.providers.simulated import handsets, reporter
from gateway.providers.twilio.webhooks import sign_url

SENT_AFTER_SECONDS = 0.05  # when the simulated carrier reports `sent`, then `delivered`
DELIVERED_AFTER_SECONDS = 0.2


@dataclass
class Report:
    """The status callbacks still to post for one message, in order (`sent`, then the final one)."""

    redis: Redis
    token: str
    url: str
    form: dict[str, str]
    steps: list[tuple[str, int | None]]

    def post_next(self, poster: reporter.Poster) -> float | None:
        """Post the next status, signed like Twilio; seconds until the next one, if any."""
        status, code = self.steps.pop(0)
        handsets.set_status(self.redis, self.form["MessageSid"], status)
        data = dict(self.form, MessageStatus=status, SmsStatus=status)
        if code:
            data["ErrorCode"] = str(code)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign_url(self.token, self.url, data),
        }
        reporter.post_quietly(poster, self.url, urllib.parse.urlencode(data).encode(), headers)
        return DELIVERED_AFTER_SECONDS if self.steps else None


def schedule(delay: float, report: Report) -> None:
    """Post the report's callbacks, the first `delay` seconds from now."""
    reporter.reporter().schedule(delay, report)
