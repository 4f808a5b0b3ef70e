"""The send rate all workers share: SMS_MPS message segments per second, kept in Redis.

This is a token bucket of depth one segment (the "generic cell rate algorithm"): one
key holds the theoretical arrival time (TAT) of the next allowed segment, and a send of
n segments moves it n/rate seconds on. A deeper bucket would let a burst of SMS_MPS
through and then refill during the same second, up to twice the limit in one window;
depth one keeps every one-second window at or below SMS_MPS. A message longer than
one segment goes whole and pushes the next send back by its full cost.

Redis' own clock decides (TIME inside the script), so workers on machines whose
clocks disagree still share one schedule.
"""

from __future__ import annotations

import time

from redis import Redis

from gateway import keys

# Pace at slightly under the limit: the gap between our clock and the moment Twilio sees
# the request varies by a few milliseconds per call, and we must not exceed it there.
HEADROOM = 0.95

# KEYS: bucket.  ARGV: milliseconds this send costs.  Returns ms to wait, "0" when granted.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now then return string.format('%.3f', tat - now) end
local nxt = now + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.3f', nxt), 'PX', math.ceil(nxt - now) + 1000)
return '0'
"""


def acquire(redis: Redis, segments: int, rate: float) -> float:
    """Take `segments` from the shared budget: 0.0 when granted, else seconds to wait first.

    Nothing is taken when the answer is a wait: call again after sleeping. A rate of 0 or
    less means unpaced.
    """
    if rate <= 0:
        return 0.0
    cost_ms = max(1, segments) * 1000.0 / (rate * HEADROOM)
    waited = redis.register_script(_ACQUIRE)(keys=[keys.OUTBOUND_PACING], args=[f"{cost_ms:.3f}"])
    return float(waited) / 1000.0


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
