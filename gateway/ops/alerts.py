"""The alert rules: what an operator must hear about, in one place.

Each rule has a stable name (the same as its Prometheus rule in deploy/prometheus/alerts.yml),
a severity, and a summary a tired operator understands; never a phone number or a handle.
The console's banner, /ops/api/alerts, /ops/api/health and the webhook (alert_webhook.py)
all show what `evaluate` finds. When an alert started firing (`since`) is remembered in Redis,
set when one is first seen and cleared when it resolves, so every web process agrees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from gateway.ops import backlog, delivery, providers, workers
from gateway.ops.present import fmt_ago
from gateway.store import keys, stats

CRITICAL, WARNING = "critical", "warning"
# Every rule and its severity. All but SentinelTrouble are Prometheus rules too: /metrics
# never calls on the Sentinels (it may be public), so only the console can judge them.
RULES: dict[str, str] = {
    "NoWritablePrimary": CRITICAL,
    "NoWorker": CRITICAL,
    "QueueTooOld": CRITICAL,
    "ProviderFailing": WARNING,
    "SendRatePinned": WARNING,
    "SentinelTrouble": WARNING,
}
CONSOLE_ONLY = frozenset({"SentinelTrouble"})

# QueueTooOld: how long the oldest item may wait, by kind of queue (the console's rows turn red too).
OLDEST_ALERT_SECONDS = {"texts": 60.0, "sms": 900.0, "jobs": 120.0}
# ProviderFailing, besides a provider that is not up: this share of its SMS failed over the
# last FAILURE_MINUTES, out of at least FAILURE_MIN_SMS (1 of 2 failing pages nobody).
FAILURE_MINUTES = 10
FAILURE_MIN_SMS = 20
FAILURE_RATIO = 0.25
# SendRatePinned: a provider sent at least PINNED_SHARE of its SMS_MPS over PINNED_MINUTES,
# while the SMS waiting grew over those minutes: the limit, not the workers, holds them back.
PINNED_MINUTES = 5
PINNED_SHARE = 0.95


@dataclass(frozen=True)
class Alert:
    name: str  # a key of RULES
    summary: str
    subject: str = ""  # what it is about, when a rule fires for several (a queue, a provider)
    since: float | None = None  # unix time it started firing (`remember`)

    @property
    def severity(self) -> str:
        return RULES[self.name]

    @property
    def id(self) -> str:
        """Stable while it fires: the rule's name and its subject."""
        return f"{self.name}:{self.subject}"

    def to_json(self) -> dict[str, object]:
        since = None if self.since is None else datetime.fromtimestamp(self.since, UTC)
        return {
            "name": self.name,
            "severity": self.severity,
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Facts:
    """What the rules judge, as the console's snapshot read it."""

    redis: dict[str, Any]  # redis_health.read
    queues: list[backlog.QueueFigures]
    workers: list[workers.WorkerRow]
    providers: list[providers.ProviderFigures]
    outbound: delivery.Delivery
    window: stats.Window
    sentinels: bool  # whether the Sentinels were asked (else SentinelTrouble is not judged)


def late(q: backlog.QueueFigures) -> bool:
    """Whether the oldest item of a queue has waited longer than its kind allows."""
    return q.oldest_age is not None and q.oldest_age > OLDEST_ALERT_SECONDS[q.spec.kind]


def _no_writable_primary(f: Facts) -> Iterator[Alert]:
    if not f.redis["writable"]:
        where, state = f.redis["address"], f.redis["state"]
        yield Alert(
            "NoWritablePrimary", f"Redis at {where} is a {state}: texts get 503 until a primary takes them."
        )


def _sentinel_trouble(f: Facts) -> Iterator[Alert]:
    s = f.redis["sentinels"]
    views = s["list"]
    if not views:
        return
    name = "SentinelTrouble"
    if not s["answered"]:
        yield Alert(
            name, f"None of the {s['configured']} Sentinels answers: nothing would fail Redis over.", "silent"
        )
    elif cannot := [v for v in views if v["primary"] and v["can_fail_over"] != "yes"]:
        said = f"Sentinel {cannot[0]['address']} could not fail Redis over: {cannot[0]['error']}"
        yield Alert(name, said, "stuck")
    if s["agreeing"] < s["answered"]:
        agree = f"{s['agreeing']} of {s['answered']}"
        yield Alert(name, f"Sentinels disagree on the primary: {agree} name {s['primary']}.", "disagree")
    elif s["primary"] and f.redis["writable"] and not s["name_ours"]:
        said = f"This app writes to {f.redis['address']}, but the Sentinels name {s['primary']}."
        yield Alert(name, said, "elsewhere")


def _no_worker(f: Facts) -> Iterator[Alert]:
    if not any(w.alive for w in f.workers):
        said = "No worker is alive: texts are stored, but none become posts and no SMS goes out."
        yield Alert("NoWorker", said)


def _queue_too_old(f: Facts) -> Iterator[Alert]:
    for q in f.queues:
        if late(q) and q.oldest_age is not None:
            limit = OLDEST_ALERT_SECONDS[q.spec.kind]
            said = f"{q.spec.label}: the oldest has waited {round(q.oldest_age)} s (limit {round(limit)} s)."
            yield Alert("QueueTooOld", said, q.spec.id)


def _provider_failing(f: Facts) -> Iterator[Alert]:
    for p in f.providers:
        if p.state != "up":
            since = f" (since {fmt_ago(p.trouble_since, f.window.now)})" if p.trouble_since else ""
            said = f"SMS provider {p.name}: {providers.STATES_MEANING[p.state]}{since}."
            yield Alert("ProviderFailing", said, p.name)
            continue
        failed = round(f.window.last_minutes(f"sms:failed@{p.name}", FAILURE_MINUTES))
        tried = failed + round(f.window.last_minutes(f"sms:sent@{p.name}", FAILURE_MINUTES))
        if tried >= FAILURE_MIN_SMS and failed >= FAILURE_RATIO * tried:
            said = f"SMS provider {p.name}: {failed} of {tried} SMS failed in the last {FAILURE_MINUTES} min."
            yield Alert("ProviderFailing", said, p.name)


def _sms_waiting(f: Facts, minutes_ago: int) -> float | None:
    """SMS waiting in the lanes `minutes_ago` minutes ago (0: now), from the depth samples;
    None when a lane has no sample then."""
    points = [q.history[-(minutes_ago + 1)] for q in f.queues if q.spec.kind == "sms" and q.history]
    return None if not points or None in points else sum(p or 0.0 for p in points)


def _send_rate_pinned(f: Facts) -> Iterator[Alert]:
    before, now = _sms_waiting(f, PINNED_MINUTES), _sms_waiting(f, 0)
    if before is None or now is None or now <= before:
        return
    for p in f.providers:
        if p.limit <= 0:  # unpaced: no limit to be pinned at
            continue
        rate = f.window.last_minutes(f"sms:segments@{p.name}", PINNED_MINUTES) / (PINNED_MINUTES * 60)
        if rate >= PINNED_SHARE * p.limit:
            said = (
                f"SMS through {p.name} go out at its limit ({rate:.1f} of {p.limit:g} segments/s over"
                f" {PINNED_MINUTES} min) while the SMS waiting grew from {round(before)} to {round(now)}:"
                " raise SMS_MPS with the provider, or expect delays."
            )
            yield Alert("SendRatePinned", said, p.name)


def firing(f: Facts) -> list[Alert]:
    """Every alert the facts raise, most severe rules first (`since` not yet known)."""
    rules = [_no_writable_primary, _no_worker, _queue_too_old, _provider_failing, _send_rate_pinned]
    if f.sentinels:
        rules.append(_sentinel_trouble)
    return [alert for rule in rules for alert in rule(f)]


def judged(f: Facts) -> frozenset[str]:
    """The rules `firing` judged: an alert of another rule is not over for not being raised."""
    return frozenset(RULES) - (frozenset() if f.sentinels else CONSOLE_ONLY)


def remember(
    redis: Redis, raised: list[Alert], rules: frozenset[str], now: float, writable: bool
) -> list[Alert]:
    """`raised` with `since` filled from Redis: set for an alert first seen now, and cleared for
    the alerts of `rules` that no longer fire. A Redis refusing writes is only read (an alert
    it has no start for started now, as far as anyone can tell)."""
    pipe = redis.pipeline(transaction=False)
    if writable:
        for alert in raised:
            pipe.hsetnx(keys.ALERTS_SINCE, alert.id, f"{now:.3f}")
    pipe.hgetall(keys.ALERTS_SINCE)
    stored: dict[str, str] = pipe.execute()[-1]
    firing_ids = {a.id for a in raised}
    over = [i for i in stored if i.partition(":")[0] in rules and i not in firing_ids]
    if over and writable:
        redis.hdel(keys.ALERTS_SINCE, *over)
    return [
        Alert(a.name, a.summary, a.subject, float(stored[a.id]) if a.id in stored else now) for a in raised
    ]


def evaluate(redis: Redis, f: Facts) -> list[Alert]:
    """The alerts firing now, each with when it started."""
    return remember(redis, firing(f), judged(f), f.window.now, bool(f.redis["writable"]))
