"""What the Android simulator remembers, in Redis so every web worker agrees (under
keys.SIMULATOR_PREFIX + "android:"; the handsets' inboxes are `simulated.handsets`')."""

from __future__ import annotations

import time
from typing import cast

from redis import Redis

from gateway.store import keys

P = keys.SIMULATOR_PREFIX + "android:"
REQUESTS = P + "requests"  # counter: every API request received, good or bad
ARRIVALS = P + "arrivals"  # list of "unix time|segments", one per SMS the phone took
OFFLINE_UNTIL = P + "offline"  # unix time until which the phone does not answer
NO_CREDIT = P + "no-credit"  # set while the SIM has no credit: every SMS fails
DELAY = P + "delay"  # seconds the phone takes to answer (a slow network)
MESSAGE_TTL_SECONDS = 14 * 24 * 3600


def _message(message_id: str) -> str:
    return f"{P}msg:{message_id}"


def arrive(redis: Redis, now: float) -> tuple[bool, bool, float]:
    """Count a request; (offline, out of credit, seconds to stall), in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.incr(REQUESTS)
    pipe.get(OFFLINE_UNTIL)
    pipe.exists(NO_CREDIT)
    pipe.get(DELAY)
    _, offline_until, no_credit, delay = pipe.execute()
    return float(offline_until or 0) > now, bool(no_credit), float(delay or 0)


def take(redis: Redis, message_id: str, segments: int, now: float) -> bool:
    """Hold a new SMS under its id; False when the phone already holds one by that id."""
    if not redis.set(_message(message_id), "1", nx=True, ex=MESSAGE_TTL_SECONDS):
        return False
    redis.rpush(ARRIVALS, f"{now:.6f}|{segments}")
    return True


def set_offline(redis: Redis, seconds: float) -> None:
    """The phone answers nothing for `seconds` (0: back online)."""
    redis.set(OFFLINE_UNTIL, f"{time.time() + max(0.0, seconds):.6f}")


def set_credit(redis: Redis, has_credit: bool) -> None:
    if has_credit:
        redis.delete(NO_CREDIT)
    else:
        redis.set(NO_CREDIT, "1")


def set_delay(redis: Redis, seconds: float) -> None:
    redis.set(DELAY, f"{seconds:.3f}")


def requests_received(redis: Redis) -> int:
    """Every request the phone's API got, answered or not."""
    return int(redis.get(REQUESTS) or 0)


def arrivals(redis: Redis) -> list[tuple[float, int]]:
    """(time, segments) of every SMS the phone took, in arrival order."""
    rows = (row.split("|") for row in cast(list[str], redis.lrange(ARRIVALS, 0, -1)))
    return [(float(t), int(n)) for t, n in rows]
