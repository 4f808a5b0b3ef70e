"""What the Twilio simulator remembers, in Redis so every web worker agrees.

All of it lives under keys.SIMULATOR_PREFIX. A phone appears only as the SHA-256 of its
number, so a scan of the whole Redis for phone numbers finds none, here included.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, cast

from redis import Redis

from gateway import keys, scripts
from gateway.phones import normalize

P = keys.SIMULATOR_PREFIX
REQUESTS = P + "requests"  # counter: every API request received, good or bad
ARRIVALS = P + "arrivals"  # list of "unix time|segments", one per accepted message
BY_RECIPIENT = P + "by-recipient"  # hash: number hash -> messages accepted for it
FAILURE = P + "fail"  # hash: remaining, status, code
DELAY = P + "delay"  # seconds Twilio takes to answer (and then to report), for fault tests
INBOX_KEEP = 200  # messages kept per phone

# KEYS: failure hash.  Returns {status, code} and counts one down, or {} when none is pending.
_TAKE_FAILURE = """
local left = tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0')
if left <= 0 then return {} end
redis.call('HINCRBY', KEYS[1], 'remaining', -1)
return redis.call('HMGET', KEYS[1], 'status', 'code')
"""
# KEYS: requests counter, failure hash, delay.  ARGV: "1" if the request is authorised.
# Counts the request and, if authorised, takes a pending failure: {status, code, delay}.
_ARRIVE = """
redis.call('INCR', KEYS[1])
local delay = redis.call('GET', KEYS[3]) or '0'
if ARGV[1] ~= '1' then return {false, false, delay} end
local left = tonumber(redis.call('HGET', KEYS[2], 'remaining') or '0')
if left <= 0 then return {false, false, delay} end
redis.call('HINCRBY', KEYS[2], 'remaining', -1)
local f = redis.call('HMGET', KEYS[2], 'status', 'code')
return {f[1], f[2], delay}
"""
# KEYS: message.  ARGV: status.  Only a message that still exists (tests flush between runs).
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'status', ARGV[1]) end
"""


def number_hash(number: str) -> str:
    return hashlib.sha256(normalize(number).encode()).hexdigest()


def _message(sid: str) -> str:
    return f"{P}msg:{sid}"


def _inbox(h: str) -> str:
    return f"{P}inbox:{h}"


def count_request(redis: Redis) -> None:
    redis.incr(REQUESTS)


def set_failure(redis: Redis, count: int, status: int, code: int) -> None:
    redis.hset(FAILURE, mapping={"remaining": count, "status": status, "code": code})


def set_delay(redis: Redis, seconds: float) -> None:
    redis.set(DELAY, f"{seconds:.3f}")


def delay(redis: Redis) -> float:
    """How long to stall each answer (0 unless a test asked)."""
    return float(redis.get(DELAY) or 0)


def take_failure(redis: Redis) -> tuple[int, int] | None:
    """The (HTTP status, Twilio code) this request must fail with, if tests asked for one."""
    found = scripts.load(redis, _TAKE_FAILURE)(keys=[FAILURE])
    if not found:
        return None
    status, code = found
    return int(status or 0), int(code or 0)


def arrive(redis: Redis, authorised: bool) -> tuple[tuple[int, int] | None, float]:
    """Count an API request; for an authorised one, take the failure tests asked for, if any.
    Returns (the (HTTP status, Twilio code) to fail with, or None; seconds to stall). One
    round trip: this runs for every SMS of a fan-out."""
    status, code, stall = scripts.load(redis, _ARRIVE)(
        keys=[REQUESTS, FAILURE, DELAY], args=["1" if authorised else "0"]
    )
    failure = None if status is None and code is None else (int(status or 0), int(code or 0))
    return failure, float(stall or 0)


def record(
    redis: Redis, sid: str, to: str, body: str, num_segments: int, arrived: float | None = None
) -> None:
    """Remember an accepted message in its recipient's inbox (`arrived`: when the request came)."""
    h, now = number_hash(to), time.time() if arrived is None else arrived
    pipe = redis.pipeline(transaction=True)
    pipe.hset(
        _message(sid),
        mapping={
            "sid": sid,
            "body": body,
            "status": "queued",
            "time": f"{now:.6f}",
            "segments": num_segments,
        },
    )
    pipe.rpush(_inbox(h), sid)
    pipe.ltrim(_inbox(h), -INBOX_KEEP, -1)
    pipe.hincrby(BY_RECIPIENT, h, 1)
    pipe.rpush(ARRIVALS, f"{now:.6f}|{num_segments}")
    pipe.execute()


def set_status(redis: Redis, sid: str, status: str) -> None:
    scripts.load(redis, _SET_STATUS)(keys=[_message(sid)], args=[status])


def inbox_for(redis: Redis, number: str) -> list[dict[str, Any]]:
    """The SMS this phone received, oldest first: sid, body, status, time, segments."""
    sids = cast(list[str], redis.lrange(_inbox(number_hash(number)), 0, -1))
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hgetall(_message(sid))
    return [
        {
            "sid": m["sid"],
            "body": m.get("body", ""),
            "status": m.get("status", ""),
            "time": float(m.get("time", 0)),
            "segments": int(m.get("segments", 1)),
        }
        for m in pipe.execute()
        if m.get("sid")
    ]


def received_count(redis: Redis, number: str) -> int:
    """How many messages Twilio accepted for this phone."""
    return int(redis.hget(BY_RECIPIENT, number_hash(number)) or 0)


def sent_count_by_recipient(redis: Redis) -> dict[str, int]:
    """Messages accepted per recipient, keyed by the hash of the number."""
    counts = cast(dict[str, str], redis.hgetall(BY_RECIPIENT))
    return {h: int(n) for h, n in counts.items()}


def requests_received(redis: Redis) -> int:
    """Every request the Messages API got, accepted or not."""
    return int(redis.get(REQUESTS) or 0)


def arrivals(redis: Redis) -> list[tuple[float, int]]:
    """(time, segments) of every accepted message, in arrival order."""
    rows = (row.split("|") for row in cast(list[str], redis.lrange(ARRIVALS, 0, -1)))
    return [(float(t), int(n)) for t, n in rows]


def reset(redis: Redis) -> None:
    """Forget everything the simulator holds."""
    found = list(redis.scan_iter(match=P + "*", count=1000))
    for start in range(0, len(found), 500):
        redis.delete(*found[start : start + 500])


def _texted(h: str) -> str:
    return f"{P}texted:{h}"


def record_texted(redis: Redis, number: str, body: str, http_status: int) -> None:
    """Remember a text the dev phone sent to the gateway, and what the webhook answered."""
    key = _texted(number_hash(number))
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(key, json.dumps({"body": body, "time": time.time(), "status": http_status}))
    pipe.ltrim(key, -INBOX_KEEP, -1)
    pipe.execute()


def conversation(redis: Redis, number: str) -> list[dict[str, Any]]:
    """What one phone sent ("out") and received ("in"), oldest first."""
    sent = [
        {"direction": "out", **json.loads(row)}
        for row in cast(list[str], redis.lrange(_texted(number_hash(number)), 0, -1))
    ]
    received = [{"direction": "in", **m} for m in inbox_for(redis, number)]
    return sorted(sent + received, key=lambda m: float(m["time"]))
