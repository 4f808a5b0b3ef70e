"""What the Twilio simulator remembers, in Redis so every web worker agrees.

All of it lives under keys.SIMULATOR_PREFIX. A phone appears only as the SHA-256 of its
number, so a scan of the whole Redis for phone numbers finds none, here included.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any, cast

from redis import Redis

from gateway.phones import normalize
from gateway.store import keys, scripts

P = keys.SIMULATOR_PREFIX
REQUESTS = P + "requests"  # counter: every API request received, good or bad
ARRIVALS = P + "arrivals"  # list of "unix time|segments", one per accepted message
BY_RECIPIENT = P + "by-recipient"  # hash: number hash -> messages accepted for it
FAILURE = P + "fail"  # hash: remaining, status, code
OUTAGE = P + "outage"  # hash: until (unix time), statuses ("429,500"), n (requests failed so far)
# list of "unix time|segments|status", one per API request, failed ones included: what a
# rate limit at Twilio's edge counts (status 0: passed on to the API, 201 or a 4xx).
REQUEST_LOG = P + "request-log"
DELAY = P + "delay"  # seconds Twilio takes to answer (and then to report), for fault tests
INBOX_KEEP = 200  # messages kept per phone

# KEYS: requests counter, failure hash, delay, outage hash, request log.
# ARGV: "1" if the request is authorised, now, segments.
# Counts and logs the request and, if authorised, takes the failure due: an outage's status
# while one lasts (its statuses in turn), else a pending failure. Returns {status, code, delay}.
_ARRIVE = """
redis.call('INCR', KEYS[1])
local delay = redis.call('GET', KEYS[3]) or '0'
local status, code = false, false
if ARGV[1] ~= '1' then
  status = '401'
elseif tonumber(redis.call('HGET', KEYS[4], 'until') or '0') > tonumber(ARGV[2]) then
  local statuses = {}
  for s in string.gmatch(redis.call('HGET', KEYS[4], 'statuses') or '503', '%d+') do
    statuses[#statuses + 1] = s
  end
  local n = redis.call('HINCRBY', KEYS[4], 'n', 1)
  status, code = statuses[(n - 1) % #statuses + 1], '0'
elseif tonumber(redis.call('HGET', KEYS[2], 'remaining') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'remaining', -1)
  local f = redis.call('HMGET', KEYS[2], 'status', 'code')
  status, code = f[1], f[2]
end
local logged = status
if not logged or logged == '0' then logged = '0' end
redis.call('RPUSH', KEYS[5], ARGV[2] .. '|' .. ARGV[3] .. '|' .. logged)
if ARGV[1] ~= '1' then return {false, false, delay} end
return {status, code, delay}
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


def set_failure(redis: Redis, count: int, status: int, code: int) -> None:
    redis.hset(FAILURE, mapping={"remaining": count, "status": status, "code": code})


def set_delay(redis: Redis, seconds: float) -> None:
    redis.set(DELAY, f"{seconds:.3f}")


def delay(redis: Redis) -> float:
    """How long to stall each answer (0 unless a test asked)."""
    return float(redis.get(DELAY) or 0)


def arrive(
    redis: Redis, authorised: bool, now: float | None = None, num_segments: int = 1
) -> tuple[tuple[int, int] | None, float]:
    """Count and log an API request (arrived at `now`, carrying `num_segments`); for an
    authorised one, take the failure tests asked for, if any. Returns (the (HTTP status,
    Twilio code) to fail with, or None; seconds to stall). One round trip: this runs for
    every SMS of a fan-out."""
    now = time.time() if now is None else now
    status, code, stall = scripts.load(redis, _ARRIVE)(
        keys=[REQUESTS, FAILURE, DELAY, OUTAGE, REQUEST_LOG],
        args=["1" if authorised else "0", f"{now:.6f}", max(1, num_segments)],
    )
    failure = None if status is None and code is None else (int(status or 0), int(code or 0))
    return failure, float(stall or 0)


def set_outage(redis: Redis, seconds: float, statuses: Sequence[int] = (429, 500)) -> float:
    """Fail every authorised request for `seconds` from now, answering `statuses` in turn
    (429 and 500 by default); 0 ends an outage. Returns the unix time it ends."""
    until = time.time() + max(0.0, seconds)
    if not statuses or any(s < 400 for s in statuses):
        raise ValueError("an outage answers HTTP error statuses")
    codes = ",".join(str(int(s)) for s in statuses)
    redis.hset(OUTAGE, mapping={"until": f"{until:.6f}", "statuses": codes, "n": 0})
    return until


def requests_log(redis: Redis) -> list[tuple[float, int, int]]:
    """(arrival time, segments, status) of every API request, failed ones included, in
    arrival order. Status is the HTTP status injected (429, 500, … or 401 for bad
    credentials), or 0 for a request passed on to the API (201, or a 4xx for bad input)."""
    rows = (row.split("|") for row in cast(list[str], redis.lrange(REQUEST_LOG, 0, -1)))
    return [(float(t), int(n), int(s)) for t, n, s in rows]


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
