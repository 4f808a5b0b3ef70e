"""The send rate all workers share: SMS_MPS message segments per second to each provider,
kept in Redis (a bucket and a guard per provider).

This is a token bucket of depth one segment (the "generic cell rate algorithm"): one
key holds the theoretical arrival time (TAT) of the next allowed segment, and a send of
n segments moves it n/rate seconds on. A deeper bucket would let a burst of SMS_MPS
through and then refill during the same second, up to twice the limit in one window;
depth one keeps every one-second window at or below SMS_MPS. A message longer than
one segment goes whole and pushes the next send back by its full cost.

A sender reserves a whole batch at once (`reserve`): it gets a slot for each message, in
order, at the spacing of the rate, starting at the TAT; the TAT moves past the last one.
Slots reserved but never used are lost, never handed out twice, so a worker that dies
holding some can only make the rate lower. Redis' own clock decides (TIME inside the
script), so workers on machines whose clocks disagree still share one schedule.

The schedule is kept where our calls start; the provider counts where they arrive, after
a delay of our own (the HTTP client, a process waiting for a CPU) and of the network
that varies per call (10–30 ms here, over 100 ms on a saturated box): bunched arrivals
once broke the limit, and a schedule run 3–5% under the rate still let an SMS too many
through a second under load. So each call also passes a guard on its way out (`admit`,
then `release` when answered): a call counts in a one-second window from when it is let
through until a second after its answer came back, and is let through only while the
window holds under SMS_MPS segments. A request arrives after it was let through and
before it was answered, so however late it arrives, any second at the provider holds at
most SMS_MPS segments. So the schedule itself runs at the full rate, and on schedule the
guard never waits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from gateway.store import keys, scripts

# KEYS: bucket.  ARGV: ms one segment costs, horizon ms, then each message's segments.
# Grants the longest prefix of the messages whose slots start within the horizon.
# Returns {ms from now until the first slot, how many were granted}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local per, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat, n = start, 0
for i = 3, #ARGV do
  if tat - now > horizon then break end
  tat = tat + per * tonumber(ARGV[i])
  n = n + 1
end
if n > 0 then redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000) end
return {string.format('%.3f', start - now), n}
"""


# KEYS: window zset.  ARGV: member ("<id>|<segments>"), segments, rate, ms a call may stay
# in flight.  Returns 0 when let through (the member added, in flight), else ms to wait.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local used = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(m, '|(%d+)$') or '1')
end
if used > 0 and used + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(first[2]) - now
  if wait > 1000 then wait = 10 end  -- the first one is still in flight: look again soon
  return math.max(1, math.ceil(wait))
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + 1000)
return 0
"""
# KEYS: window zset.  ARGV: member, "1" if the request was made (it stays a second), else "0".
_RELEASE = """
if ARGV[2] ~= '1' then return redis.call('ZREM', KEYS[1], ARGV[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
return redis.call('ZADD', KEYS[1], 'XX', now + 1000, ARGV[1])
"""
# Longer than any API call (providers/twilio/api.py's API_TIMEOUT_SECONDS): a call still in flight keeps its
# place this long, so one whose worker died frees it after this.
IN_FLIGHT_SECONDS = 20.0


@dataclass(frozen=True)
class Reservation:
    """Slots for the first `granted` messages asked for: `at[i]` is the `time.monotonic()`
    at which message i may go. With none granted, `wait` says how long until one could be."""

    at: tuple[float, ...]
    wait: float

    @property
    def granted(self) -> int:
        return len(self.at)


def seconds_per_segment(rate: float) -> float:
    """The spacing of segments at `rate`."""
    return 1.0 / rate


def reserve(
    redis: Redis, segments: Sequence[int], rate: float, horizon: float = 5.0, *, provider: str
) -> Reservation:
    """Reserve send slots for messages of `segments` each, in order, from `provider`'s budget.

    Only the messages whose slot starts within `horizon` seconds are granted (possibly
    none: then nothing is taken). A rate of 0 or less means unpaced: all of them, now.
    """
    if rate <= 0:
        return Reservation(at=(time.monotonic(),) * len(segments), wait=0.0)
    if not segments:
        return Reservation(at=(), wait=0.0)
    per_ms = seconds_per_segment(rate) * 1000.0
    args: list[str | int] = [f"{per_ms:.6f}", f"{max(0.0, horizon) * 1000.0:.3f}"]
    args += [max(1, int(n)) for n in segments]
    first, granted = scripts.load(redis, _RESERVE)(keys=[keys.outbound_pacing(provider)], args=args)
    wait = float(first) / 1000.0
    # Slots count from after Redis answered: late by a round trip at most, never early.
    at, slot = [], time.monotonic() + wait
    for n in segments[: int(granted)]:
        at.append(slot)
        slot += max(1, int(n)) * per_ms / 1000.0
    return Reservation(at=tuple(at), wait=wait)


def _member(call_id: str, segments: int) -> str:
    return f"{call_id}|{max(1, int(segments))}"


def admit(redis: Redis, call_id: str, segments: int, rate: float, *, provider: str) -> float:
    """Let one call (`call_id`: unique to this attempt) through the guard: 0.0 if it may go
    now (then `release` it once answered), else seconds to wait before asking again. A call
    is always let through an empty window (a message longer than the rate allows still goes,
    alone). Unpaced: always 0.0."""
    if rate <= 0:
        return 0.0
    in_flight_ms = int(IN_FLIGHT_SECONDS * 1000)
    args: list[str | int] = [_member(call_id, segments), max(1, int(segments)), f"{rate:.6f}", in_flight_ms]
    wait_ms = scripts.load(redis, _ADMIT)(keys=[keys.outbound_window(provider)], args=args)
    return int(wait_ms) / 1000.0


def release(
    redis: Redis, call_id: str, segments: int, rate: float, made: bool = True, *, provider: str
) -> None:
    """The call let through by `admit` was answered (or failed): it stays in the window for
    one more second; or, `made` False, it never went out and leaves the window now."""
    if rate <= 0:
        return
    args = [_member(call_id, segments), "1" if made else "0"]
    scripts.load(redis, _RELEASE)(keys=[keys.outbound_window(provider)], args=args)
