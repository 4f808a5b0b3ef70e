"""Which provider carries an SMS: the channel its recipient texted through last, and when
that provider is in trouble, with failover on, another one.

A texter is one person whatever the channel (their identity is their number), and what
Kabootar sends them goes back the way they came in (`ch` on the SMS, see
`outbound.queue`). An SMS whose channel is not on (or not known) goes through the first
provider of SMS_PROVIDERS.

Each provider's health is three marks: since when its API has refused with a retryable error
(or left the answer unknown) without a success in between; since when it has reported SMS it
took as failed with a retryable error (a phone without credit or signal takes every SMS, then
reports each failed) without one sent or delivered in between; and a "down" mark an operator
sets.
With SMS_FAILOVER on, a provider failing for SMS_FAILOVER_AFTER seconds, or marked down,
hands its SMS to the next provider that is neither. Off by default: some operators will
not want a second sender number to appear to their texters.

A provider failed over carries no SMS, so none could clear its marks: once every
TRIAL_SECONDS it is given one of its own texters' SMS to try (a circuit breaker's
half-open state). Taken and reported sent, the marks clear and its texters' SMS come back
to it; refused, that one SMS is retried like any other, through the next provider. An
operator marking a provider up clears its marks too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from redis import Redis
from redis.client import Pipeline

from gateway.config import Config
from gateway.providers import registry
from gateway.store import keys

PROBE_SECONDS = 30  # how often one of the workers asks each provider's API whether it answers
TRIAL_SECONDS = 60  # how often a failed-over provider is given one SMS to see whether it recovered


@dataclass(frozen=True)
class Health:
    """Providers' health as read at one moment: failing since (unix time), marked down, not
    answering a health probe since (for the console and /readyz; routing does not use it)."""

    failing_since: dict[str, float]
    down: frozenset[str]
    unreachable_since: dict[str, float] = field(default_factory=dict)
    last_ok: dict[str, float] = field(default_factory=dict)  # when each last took an SMS

    def troubled(self, provider: str, config: Config, now: float) -> bool:
        since = self.failing_since.get(provider)
        failing = since is not None and now - since >= config.sms_failover_after
        return failing or provider in self.down

    def state(self, provider: str) -> str:
        """ "down" (an operator said so), "unreachable" (its API does not answer), "failing"
        (it refuses SMS with retryable errors), or "up"."""
        if provider in self.down:
            return "down"
        if provider in self.unreachable_since:
            return "unreachable"
        return "failing" if provider in self.failing_since else "up"


def read_health(redis: Redis, providers: Iterable[str]) -> Health:
    """Every provider's health, in one round trip."""
    names = list(providers)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.hmget(keys.provider(name), "failing", "down", "unreachable", "last_ok", "reports_failing")
    rows = cast(list[list[str | None]], pipe.execute())
    failing = {  # the API's trouble or the reports', whichever began first
        p: min(float(t) for t in (row[0], row[4]) if t)
        for p, row in zip(names, rows, strict=True)
        if row[0] or row[4]
    }
    down = frozenset(p for p, row in zip(names, rows, strict=True) if row[1])
    unreachable = {p: float(row[2]) for p, row in zip(names, rows, strict=True) if row[2]}
    last_ok = {p: float(row[3]) for p, row in zip(names, rows, strict=True) if row[3]}
    return Health(failing, down, unreachable, last_ok)


def home(config: Config, channel: str) -> str:
    """The provider an SMS goes through when nothing is wrong: its recipient's channel."""
    return channel if channel in config.sms_providers else config.sms_providers[0]


def trials(
    redis: Redis, config: Config, health: Health, channels: Iterable[str], now: float | None = None
) -> set[str]:
    """Of the home providers of SMS to `channels`, those failing over (not marked down) that
    may try one SMS now: each at most once per TRIAL_SECONDS, whichever worker asks. For
    `choose`, which spends them."""
    now = time.time() if now is None else now
    if not config.sms_failover:
        return set()
    homes = {home(config, channel) for channel in channels}
    failing = [p for p in homes if p not in health.down and health.troubled(p, config, now)]
    if not failing:
        return set()
    pipe = redis.pipeline(transaction=False)
    for provider in failing:
        pipe.set(keys.provider_trial(provider), f"{now:.3f}", nx=True, px=int(TRIAL_SECONDS * 1000))
    return {p for p, took in zip(failing, pipe.execute(), strict=True) if took}


def choose(
    config: Config, health: Health, channel: str, now: float | None = None, trying: set[str] | None = None
) -> str:
    """The provider to send an SMS through, given its recipient's channel. A provider in
    `trying` (see `trials`) carries this SMS, and is taken out of it."""
    ours = home(config, channel)
    now = time.time() if now is None else now
    if not config.sms_failover or not health.troubled(ours, config, now):
        return ours
    if trying and ours in trying:
        trying.discard(ours)
        return ours
    others = [p for p in config.sms_providers if p != ours and not health.troubled(p, config, now)]
    return others[0] if others else ours


def note_many(pipe: Pipeline, provider: str, outcomes: Sequence[str], now: float) -> None:
    """Count a batch of API calls' outcomes, in the order they came, towards their provider's
    health (in the caller's pipeline, at most three commands): a success clears the trouble;
    a retryable refusal or no answer starts it, if not already."""
    troubles = [i for i, outcome in enumerate(outcomes) if outcome in ("retry", "unknown")]
    sent = [i for i, outcome in enumerate(outcomes) if outcome == "sent"]
    if sent:
        pipe.hdel(keys.provider(provider), "failing")
        pipe.hset(keys.provider(provider), "last_ok", f"{now:.3f}")
    if troubles and (not sent or troubles[-1] > sent[-1]):
        pipe.hsetnx(keys.provider(provider), "failing", f"{now:.3f}")


def probe(redis: Redis, config: Config) -> None:
    """Ask each provider's API whether it answers, at most every PROBE_SECONDS whichever
    worker asks (for the console and /readyz: a phone switched off shows before an SMS fails)."""
    for provider in config.sms_providers:
        if not redis.set(keys.provider_probe(provider), "1", nx=True, ex=PROBE_SECONDS):
            continue
        answered = registry.probe(config, provider)
        if answered is True:
            redis.hdel(keys.provider(provider), "unreachable")
        elif answered is False:
            redis.hsetnx(keys.provider(provider), "unreachable", f"{time.time():.3f}")


def set_down(redis: Redis, provider: str, down: bool) -> None:
    """An operator marks a provider down (its SMS fail over, when failover is on) or up: a
    fresh start, its failures forgotten (they mark it again if they go on)."""
    if down:
        redis.hset(keys.provider(provider), "down", "1")
    else:
        redis.hdel(keys.provider(provider), "down", "failing", "reports_failing")
