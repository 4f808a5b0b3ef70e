"""Once a minute, the minutes just ended go from the counters' minute hashes (stats.py,
kept ~2 hours) into the week's per-minute buckets (buckets.py), for the charts.

Nothing on the path of a text or an SMS writes twice: the webhook, the pipeline and the
sender keep counting into the minute hashes as before, and one worker a minute copies
what the charts draw. The workers' watchdogs all call `Rollup.tick` every second; a
SET NX per minute lets exactly one of them do the copy. Minutes missed while no worker
ran are caught up, as far back as the minute hashes still live.

What a minute holds, as series (named as the counters they come from):
- counters of stats.py: "received", "posts", per provider "sms:sent@twilio" (SMS it took)
  and "sms:segments@twilio" (its send rate), the latency buckets "lat:<stage>:<bucket>";
- levels: "depth:<place>" for the texts' inbox and the SMS lanes — the last of the depth
  samples taken in that minute (every 10 s, by the watchdog or the console), stored plus
  one so that 0 means "not sampled" rather than "empty";
- outcomes by provider, "outcome:<status>@<provider>": delivery reports arrive in a
  Lua script that counts them only in the all-time `keys.OUTBOUND_STATS`, so each rollup
  takes the difference from what the last one read (and charts it in the last minute).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import cast

from redis import Redis

from gateway.store import buckets, keys, queues, stats

GRACE_SECONDS = 5  # a count stamped with a minute may land a moment after it ends
CATCH_UP_MINUTES = 120  # the minute hashes live about two hours (stats.MINUTE_TTL_SECONDS)
LOCK_SECONDS = 300
OUTCOMES = ("delivered", "undelivered", "failed", "retried")
PLACES = ("inbox", *(f"sms-{lane}" for lane in queues.LANES))  # ids as queues.places names them


def counters(providers: Sequence[str]) -> list[str]:
    """The counter series: summed over a chart's point."""
    found = ["received", "posts"]
    for p in providers:
        found += [f"sms:sent@{p}", f"sms:segments@{p}"]
    for stage in stats.LATENCIES:
        found += [f"lat:{stage}:{b}" for b in range(len(stats.LATENCY_BOUNDS) + 1)]
    return found


def levels() -> list[str]:
    """The level series (queue depths): stored plus one, 0 where not sampled."""
    return [f"depth:{place}" for place in PLACES]


def outcomes(providers: Sequence[str]) -> list[str]:
    """The delivery outcome series, by provider."""
    return [f"outcome:{status}@{p}" for p in providers for status in OUTCOMES]


def every_series(providers: Sequence[str]) -> list[str]:
    return counters(providers) + levels() + outcomes(providers)


def from_minute(minute: Mapping[str, str], providers: Sequence[str]) -> dict[str, int]:
    """The series values one minute hash gives (the outcomes aside)."""
    found = {name: int(float(minute[name])) for name in counters(providers) if name in minute}
    found |= {name: int(float(minute[name])) + 1 for name in levels() if name in minute}
    return found


def outcome_totals(outbound_stats: Mapping[str, str], providers: Sequence[str]) -> Counter[str]:
    """The all-time outcome counters ("failed:21211@twilio" -> 3) summed by status and provider."""
    found: Counter[str] = Counter()
    for field, value in outbound_stats.items():
        outcome, at, provider = field.partition("@")
        status = outcome.partition(":")[0]
        if at and status in OUTCOMES and provider in providers:
            found[f"outcome:{status}@{provider}"] += int(value)
    return found


def outcomes_since(
    now_stats: Mapping[str, str], seen_stats: Mapping[str, str], providers: Sequence[str]
) -> dict[str, int]:
    """Outcomes counted since the last rollup read the counters (none before a first read)."""
    if not seen_stats:
        return {}
    now, seen = outcome_totals(now_stats, providers), outcome_totals(seen_stats, providers)
    return {name: max(0, n - seen[name]) for name, n in now.items()}


def roll(redis: Redis, providers: Sequence[str], last: int) -> int:
    """Copy the minutes after the last one rolled up, through `last`, into the buckets (two
    round trips); returns how many."""
    rolled = redis.get(keys.CHART_ROLLED)
    first = last - CATCH_UP_MINUTES + 1
    if rolled is not None:
        first = max(first, int(cast(str, rolled)) + 1)
    if first > last:
        return 0
    pipe = redis.pipeline(transaction=False)
    for m in range(first, last + 1):
        pipe.hgetall(keys.stats_minute(m))
    pipe.hgetall(keys.OUTBOUND_STATS)
    pipe.hgetall(keys.CHART_OUTCOMES_SEEN)
    *minutes, now_stats, seen_stats = pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for m, found in zip(range(first, last + 1), minutes, strict=True):
        values = from_minute(found, providers)
        if m == last:
            values |= outcomes_since(now_stats, seen_stats, providers)
        buckets.write(pipe, m, values)
    pipe.delete(keys.CHART_OUTCOMES_SEEN)
    # "read_at" names no provider (no "@"): it only marks that a rollup read the counters.
    pipe.hset(keys.CHART_OUTCOMES_SEEN, mapping={"read_at": last, **now_stats})
    pipe.set(keys.CHART_ROLLED, last)
    pipe.execute()
    return last - first + 1


class Rollup:
    """A watchdog's share of the rollup: `tick` every beat; at most one Redis command a
    minute unless this worker is the one that copies."""

    def __init__(self, providers: Sequence[str]) -> None:
        self.providers = tuple(providers)
        self.tried: int | None = None  # the last minute this process tried to roll up to

    def tick(self, redis: Redis, now: float | None = None) -> bool:
        """Roll up to the last minute that has ended (GRACE_SECONDS ago), once across all
        workers; returns whether this call did."""
        now = time.time() if now is None else now
        last = stats.minute_of(now - GRACE_SECONDS) - 1
        if last == self.tried:
            return False
        won = redis.set(keys.chart_rollup(last), "1", nx=True, ex=LOCK_SECONDS)
        self.tried = last  # (after the SET: a Redis error leaves the minute to the next beat)
        if not won:
            return False
        roll(redis, self.providers, last)
        return True
