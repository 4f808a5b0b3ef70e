"""Outbound SMS: outcomes by status and provider error code, send rate, time to drain.

Totals come from the sender's own outcome counters (`keys.OUTBOUND_STATS`, fields
"sent", "delivered", "undelivered:30003", "failed:21211", ...); the send rate from the
per-minute counters `stats.record_sms` keeps ("sms:sent", "sms:segments").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis import Redis

from gateway.providers import registry
from gateway.providers.records import NO_ANSWER
from gateway.store import keys, stats

# The sender's own codes, beside the provider's.
OURS: dict[str, str] = {
    "unconfirmed": "the provider never confirmed taking it",
    NO_ANSWER: "no answer from the provider",
}
STATUSES = ("sent", "delivered", "undelivered", "failed", "cancelled", "retried")


def meaning(code: str) -> str:
    """What an error code (the provider's, or one of ours) means, in a few words."""
    return OURS.get(code) or registry.describe(code)


@dataclass(frozen=True)
class Delivery:
    waiting: int  # in the lanes now
    retry_later: int  # waiting for a retry
    sending: int  # handed to the provider, answer not yet known
    by_status: dict[str, int]
    by_code: list[dict[str, object]]  # status, code, meaning, count; most frequent first
    send_rate: float  # segments per second over the last minute
    sent_per_s: float  # messages per second over the last minute
    sms_mps: float
    drain_seconds: float | None
    raw: dict[str, str]  # the outcome counters as stored, by provider too (see `by_provider`)

    def to_json(self) -> dict[str, object]:
        return {
            "waiting": self.waiting,
            "retry_later": self.retry_later,
            "sending": self.sending,
            "by_status": self.by_status,
            "by_code": self.by_code,
            "send_rate": round(self.send_rate, 3),
            "sent_per_s": round(self.sent_per_s, 3),
            "sms_mps": self.sms_mps,
            "drain_seconds": None if self.drain_seconds is None else round(self.drain_seconds, 1),
        }


def by_provider(raw: dict[str, str]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The sender's outcome counters split: in all ("failed:21211" -> 3), and by provider
    ("twilio" -> {"failed:21211": 2}), from the fields that name one ("failed:21211@twilio")."""
    plain: dict[str, int] = {}
    providers: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        outcome, at, provider = field.partition("@")
        if at:
            providers.setdefault(provider, {})[outcome] = int(value)
        else:
            plain[outcome] = int(value)
    return plain, providers


def outcomes(raw: dict[str, str]) -> tuple[dict[str, int], list[dict[str, object]]]:
    """Split the sender's outcome counters into totals by status and rows by error code."""
    by_status = dict.fromkeys(STATUSES, 0)
    by_code: list[dict[str, object]] = []
    for field, value in by_provider(raw)[0].items():
        status, _, code = field.partition(":")
        by_status[status] = by_status.get(status, 0) + int(value)
        if code:
            by_code.append({"status": status, "code": code, "meaning": meaning(code), "count": int(value)})
    by_code.sort(key=lambda row: (-int(str(row["count"])), str(row["code"])))
    return by_status, by_code


def raw_outcomes(redis: Redis) -> dict[str, str]:
    """The sender's outcome counters as stored ("failed:21211" -> "3")."""
    return cast(dict[str, str], redis.hgetall(keys.OUTBOUND_STATS))


def drain_seconds(backlog: float, sent_per_s: float, sms_mps: float) -> float | None:
    """How long until `backlog` SMS are sent: at the rate they went out, or at the limit
    while none did; None when neither is known (nothing sent, no limit)."""
    if not backlog:
        return 0.0
    pace = sent_per_s if sent_per_s > 0 else sms_mps
    return backlog / pace if pace > 0 else None


def read(redis: Redis, waiting: int, retry_later: int, window: stats.Window, sms_mps: float) -> Delivery:
    """The outbound figures, given the lanes' depths the backlog read already."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.OUTBOUND_STATS)
    pipe.zcard(keys.OUTBOUND_SENDING)
    raw, sending = pipe.execute()
    by_status, by_code = outcomes(raw)
    sent_per_s = window.per_second("sms:sent")
    return Delivery(
        waiting=waiting,
        retry_later=retry_later,
        sending=int(sending),
        by_status=by_status,
        by_code=by_code,
        send_rate=window.per_second("sms:segments"),
        sent_per_s=sent_per_s,
        sms_mps=sms_mps,
        drain_seconds=drain_seconds(waiting + retry_later, sent_per_s, sms_mps),
        raw=raw,
    )
