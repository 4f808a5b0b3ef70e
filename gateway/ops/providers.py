"""Each SMS provider that is on, as the console shows it: texts in and SMS out through it,
its send rate against its limit, its delivery outcomes, when it last took an SMS, and
whether it is up (see `outbox.routes` for what "failing", "unreachable" and "down" mean).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from gateway.config import Config
from gateway.ops import delivery
from gateway.outbox import routes
from gateway.store import stats

STATES_MEANING = {
    "up": "up",
    "failing": "refusing SMS, or reporting them failed, with retryable errors",
    "unreachable": "its API does not answer",
    "down": "marked down by an operator",
}


@dataclass(frozen=True)
class ProviderFigures:
    name: str
    state: str  # up / failing / unreachable / down
    simulated: bool
    received: int  # texts that came in through it, ever
    received_per_min: float
    sent: int  # SMS it took, ever
    sent_per_s: float
    send_rate: float  # segments per second over the last minute
    limit: float  # its SMS_MPS (0 or less: none)
    delivered: int
    failed: int  # failed or undelivered, by its own reports or refusals
    last_ok: float | None  # when it last took an SMS
    trouble_since: float | None  # failing or unreachable since

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "state_meaning": STATES_MEANING[self.state],
            "simulated": self.simulated,
            "received": self.received,
            "received_per_min": round(self.received_per_min, 2),
            "sent": self.sent,
            "sent_per_s": round(self.sent_per_s, 3),
            "send_rate": round(self.send_rate, 3),
            "limit": self.limit,
            "delivered": self.delivered,
            "failed": self.failed,
            "last_ok": self.last_ok,
            "trouble_since": self.trouble_since,
        }


def read(
    redis: Redis, config: Config, window: stats.Window, raw_outcomes: dict[str, str]
) -> list[ProviderFigures]:
    """Every provider that is on, in SMS_PROVIDERS order, given the outcome counters the
    delivery figures read (one round trip: their health)."""
    names = config.sms_providers
    health = routes.read_health(redis, names)
    _, outcomes = delivery.by_provider(raw_outcomes)
    found = []
    for name in names:
        counts = outcomes.get(name, {})
        failed = sum(n for field, n in counts.items() if field.startswith(("failed", "undelivered")))
        trouble = health.unreachable_since.get(name) or health.failing_since.get(name)
        found.append(
            ProviderFigures(
                name=name,
                state=health.state(name),
                simulated=config.simulated(name),
                received=window.total(f"received@{name}"),
                received_per_min=window.last_minute(f"received@{name}"),
                sent=counts.get("sent", 0),
                sent_per_s=window.per_second(f"sms:sent@{name}"),
                send_rate=window.per_second(f"sms:segments@{name}"),
                limit=config.mps(name),
                delivered=counts.get("delivered", 0),
                failed=failed,
                last_ok=health.last_ok.get(name),
                trouble_since=trouble,
            )
        )
    return found
