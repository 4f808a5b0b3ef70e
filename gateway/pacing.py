"""The send rate all workers share: SMS_MPS message segments per second, kept in Redis.

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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from gateway import keys, scripts

# Pace under the limit: a request reaches Twilio some time after our slot for it, by a
# delay that varies per call (thread wake-up, the other requests in flight: 10–30 ms
# here, over 50 ms while the box is saturated). Spacing at 1/(0.9 × rate) leaves ~110 ms
# of bunching per second before the limit where Twilio counts: 0.97 and then 0.95 each
# let one SMS too many through a second under load (bench at 100/s; the test at 5/s).
# The price is ~10% of the allowed rate; exceeding SMS_MPS is not an option.
HEADROOM = 0.9

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
    """The spacing of segments at `rate` (with the headroom)."""
    return 1.0 / (rate * HEADROOM)


def reserve(redis: Redis, segments: Sequence[int], rate: float, horizon: float = 5.0) -> Reservation:
    """Reserve send slots for messages of `segments` each, in order, from the shared budget.

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
    first, granted = scripts.load(redis, _RESERVE)(keys=[keys.OUTBOUND_PACING], args=args)
    wait = float(first) / 1000.0
    # Slots count from after Redis answered: late by a round trip at most, never early.
    at, slot = [], time.monotonic() + wait
    for n in segments[: int(granted)]:
        at.append(slot)
        slot += max(1, int(n)) * per_ms / 1000.0
    return Reservation(at=tuple(at), wait=wait)


def acquire(redis: Redis, segments: int, rate: float) -> float:
    """Take `segments` from the shared budget: 0.0 when granted, else seconds to wait first.

    Nothing is taken when the answer is a wait: call again after sleeping. A rate of 0 or
    less means unpaced.
    """
    got = reserve(redis, [segments], rate, horizon=0.0)
    return 0.0 if got.granted else max(got.wait, 1e-3)


def wait_for(redis: Redis, segments: int, rate: float, deadline: float | None = None) -> float:
    """Block until `segments` are granted and return 0.0; or, if that would pass `deadline`
    (a `time.monotonic()` value), take nothing and return how many seconds are still to wait.
    """
    while True:
        wait = acquire(redis, segments, rate)
        if wait <= 0:
            return 0.0
        if deadline is not None and time.monotonic() + wait > deadline:
            return wait
        time.sleep(wait)
