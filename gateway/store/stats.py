"""Small counters and latency histograms kept in Redis, for the operator console and /metrics.

Every counter lives twice: in one all-time hash (what /metrics exports as counters)
and in a hash for the current minute that expires after about two hours (what the
console's rates, sparklines and recent percentiles read). A latency is counted in a
fixed bucket, so percentiles over any span of minutes are sums of small hashes,
whichever process wrote them. Any web process can draw the page; none keeps state.

Writers pass the pipeline they already send, so a counter adds commands, not round
trips: `record(pipe, "received")`, `observe_latencies(pipe, "webhook_to_post", [0.8])`.
A plain client works too (the functions then send one pipeline of their own).
Counter names are fixed words, queue ids and provider error codes: never a number or handle.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from redis import Redis
from redis.client import Pipeline

from gateway.store import keys

MINUTE_TTL_SECONDS = 2 * 3600 + 300  # the console draws an hour; the rest is slack
# Upper bounds of the latency buckets, in seconds; a last bucket catches everything slower.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
LATENCIES = ("webhook_to_post", "post_to_sms")

# A Lua helper for scripts that already write at the webhook (see pipeline/intake.py):
# KEYS of the caller's script must include the total and minute hashes.
LUA_COUNT = """
local function kb_count(total, minute, ttl, name, n)
  redis.call('HINCRBY', total, name, n)
  redis.call('HINCRBY', minute, name, n)
  redis.call('EXPIRE', minute, ttl)
end
"""


def minute_of(now: float | None = None) -> int:
    """The minute number a time falls in (unix seconds // 60)."""
    return int((time.time() if now is None else now) // 60)


def lua_keys(now: float | None = None) -> list[str]:
    """The two hash keys a script using LUA_COUNT writes: all-time, then this minute."""
    return [keys.STATS_TOTAL, keys.stats_minute(minute_of(now))]


def _pipe(r: Redis | Pipeline) -> tuple[Pipeline, bool]:
    if isinstance(r, Pipeline):
        return r, False
    return r.pipeline(transaction=False), True


def record_many(r: Redis | Pipeline, counts: Mapping[str, int], now: float | None = None) -> None:
    """Add to several counters at once (zero counts are skipped)."""
    pipe, own = _pipe(r)
    minute = keys.stats_minute(minute_of(now))
    for name, n in counts.items():
        if n:
            pipe.hincrby(keys.STATS_TOTAL, name, n)
            pipe.hincrby(minute, name, n)
    pipe.expire(minute, MINUTE_TTL_SECONDS)
    if own:
        pipe.execute()


def record(r: Redis | Pipeline, name: str, n: int = 1, now: float | None = None) -> None:
    """Add `n` to counter `name` (e.g. "received", "posts", "in:sms-replies")."""
    record_many(r, {name: n}, now)


def sms_counts(
    status: str, error_code: int | str | None = None, segments: int = 0, provider: str = ""
) -> Counter[str]:
    """The counters one SMS outcome adds to (see `record_sms`); a batch sums them and
    records the sum once (`record_many`)."""
    counts: Counter[str] = Counter({f"sms:{status}": 1})
    if error_code not in (None, "", 0, "0"):
        counts[f"sms:{status}:{error_code}"] = 1
    if segments:
        counts["sms:segments"] = segments
    if provider:
        counts[f"sms:{status}@{provider}"] = 1
        if segments:
            counts[f"sms:segments@{provider}"] = segments
    return counts


def record_sms(
    r: Redis | Pipeline,
    status: str,
    error_code: int | str | None = None,
    segments: int = 0,
    provider: str = "",
) -> None:
    """Count one SMS outcome: status "sent"/"delivered"/"undelivered"/"failed"/..., with
    the provider's error code when there is one; `segments` for an SMS it accepted (send
    rate). With `provider`, the status and segments are also counted for it ("@android")."""
    record_many(r, sms_counts(status, error_code, segments, provider))


def bucket_of(seconds: float) -> int:
    """Index of the latency bucket `seconds` falls in (len(LATENCY_BOUNDS) for the slowest)."""
    return bisect.bisect_left(LATENCY_BOUNDS, seconds)


def observe_latencies(
    r: Redis | Pipeline, name: str, seconds: Iterable[float], now: float | None = None
) -> None:
    """Count several latencies of one kind ("webhook_to_post", "post_to_sms") in their buckets."""
    values = [max(0.0, s) for s in seconds]
    if not values:
        return
    pipe, own = _pipe(r)
    counts = Counter(f"lat:{name}:{bucket_of(s)}" for s in values)
    counts[f"lat:{name}:n"] = len(values)
    record_many(pipe, counts, now)
    minute = keys.stats_minute(minute_of(now))
    total = round(sum(values), 3)
    pipe.hincrbyfloat(keys.STATS_TOTAL, f"lat:{name}:sum", total)
    pipe.hincrbyfloat(minute, f"lat:{name}:sum", total)
    if own:
        pipe.execute()


def sample_depths(r: Redis | Pipeline, depths: Mapping[str, int], now: float | None = None) -> None:
    """Note each queue's depth for this minute (the console's sparklines draw these)."""
    pipe, own = _pipe(r)
    minute = keys.stats_minute(minute_of(now))
    pipe.hset(minute, mapping={f"depth:{q}": d for q, d in depths.items()})
    pipe.expire(minute, MINUTE_TTL_SECONDS)
    if own:
        pipe.execute()


class Window:
    """The minute hashes of the last hour (oldest first, the current minute last), read once."""

    def __init__(
        self, minutes: Sequence[Mapping[str, str]], now: float, totals: Mapping[str, str] | None = None
    ) -> None:
        self.minutes = [{k: float(v) for k, v in m.items()} for m in minutes]
        self.now = now
        self.totals = {k: float(v) for k, v in (totals or {}).items()}  # the all-time counters

    @classmethod
    def read(cls, redis: Redis, minutes: int = 60, now: float | None = None) -> Window:
        """Read the last `minutes` minutes, the current one and the totals, in one round trip."""
        now = time.time() if now is None else now
        current = minute_of(now)
        pipe = redis.pipeline(transaction=False)
        for m in range(current - minutes, current + 1):
            pipe.hgetall(keys.stats_minute(m))
        pipe.hgetall(keys.STATS_TOTAL)
        *found, totals = pipe.execute()
        return cls(found, now, totals)

    def total(self, name: str) -> int:
        """An all-time counter (0 if it never moved)."""
        return int(self.totals.get(name, 0))

    def _fraction(self) -> float:
        """How much of the current minute has passed (at least a second, to avoid /0)."""
        return max(1.0, self.now % 60) / 60

    def last_minute(self, name: str) -> float:
        """Count over the last 60 s: this minute plus the unelapsed share of the previous one."""
        return self.last_minutes(name, 1)

    def last_minutes(self, name: str, minutes: int) -> float:
        """Count over the last `minutes` × 60 s: this minute, the `minutes` - 1 before it, and
        the unelapsed share of the one before those."""
        span = [m.get(name, 0.0) for m in self.minutes[-(minutes + 1) :]]
        if len(span) <= minutes:
            return sum(span)
        return sum(span[1:]) + span[0] * (1 - self._fraction())

    def per_second(self, name: str) -> float:
        """Rate over the last minute, per second."""
        return self.last_minute(name) / 60

    def seen(self, name: str) -> bool:
        """Whether counter `name` moved at all in the window."""
        return any(name in m for m in self.minutes)

    def series(self, name: str) -> list[float | None]:
        """One value per minute, oldest first (None where the minute has no value)."""
        return [m.get(name) for m in self.minutes]

    def histogram(self, name: str, minutes: int = 5) -> list[float]:
        """Bucket counts of latency `name` over the last `minutes` minutes."""
        counts = [0.0] * (len(LATENCY_BOUNDS) + 1)
        span = self.minutes[-(minutes + 1) :]
        for i, m in enumerate(span):
            weight = (1 - self._fraction()) if i == 0 and len(span) == minutes + 1 else 1.0
            for b in range(len(counts)):
                counts[b] += m.get(f"lat:{name}:{b}", 0.0) * weight
        return counts


def quantile(q: float, counts: Sequence[float]) -> float | None:
    """The q-quantile (0..1) of a bucketed histogram, interpolated within its bucket
    as Prometheus's histogram_quantile does; None when it holds nothing."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i >= len(LATENCY_BOUNDS):
                return LATENCY_BOUNDS[-1]  # slower than the last bound: all we can say
            low = LATENCY_BOUNDS[i - 1] if i else 0.0
            return low + (LATENCY_BOUNDS[i] - low) * (rank - seen) / c
        seen += c
    return LATENCY_BOUNDS[-1]


def totals(redis: Redis) -> dict[str, float]:
    """Every all-time counter."""
    return {str(k): float(v) for k, v in redis.hgetall(keys.STATS_TOTAL).items()}
