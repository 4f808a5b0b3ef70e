"""What the Twilio simulator remembers, in Redis so every web worker agrees: the requests
its API got, the failures tests asked for (under keys.SIMULATOR_PREFIX; what each phone
received is `simulated.handsets`')."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from redis import Redis

from gateway.providers.simulated import handsets
from gateway.store import keys, scripts

P = keys.SIMULATOR_PREFIX
REQUESTS = P + "requests"  # counter: every API request received, good or bad
ARRIVALS = P + "arrivals"  # list of "unix time|segments", one per accepted message
FAILURE = P + "fail"  # hash: remaining, status, code
OUTAGE = P + "outage"  # hash: until (unix time), statuses ("429,500"), n (requests failed so far)
# list of "unix time|segments|status", one per API request, failed ones included: what a
# rate limit at Twilio's edge counts (status 0: passed on to the API, 201 or a 4xx).
REQUEST_LOG = P + "request-log"
DELAY = P + "delay"  # seconds Twilio takes to answer (and then to report), for fault tests
OPTED_OUT = P + "opted-out"  # set: number hashes of the phones that texted STOP (Twilio's blocklist)

# KEYS: requests counter, failure hash, delay, outage hash, request log, opted-out set; then,
# for a well-formed request, the message's hash, its recipient's inbox, the by-recipient
# counts, the arrivals list.
# ARGV: "1" if the request is authorised, now, segments, the recipient's number hash; then
# "1" to store the message, its sid, channel, body, status ("" when no callback will report
# it: its final one), segments, how many an inbox keeps, the inbox's number hash.
# Counts and logs the request and, if authorised, takes the failure due: an outage's status
# while one lasts (its statuses in turn), else a pending failure, else Twilio's 21610 for a
# recipient who texted STOP. A message the API then accepts (no failure, or a carrier's
# 30xxx to report later) is stored as `handsets.deliver` stores one (its LUA_DELIVER).
# Returns {status, code, delay}.
_ARRIVE = (
    handsets.LUA_DELIVER
    + """
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
elseif redis.call('SISMEMBER', KEYS[6], ARGV[4]) == 1 then
  status, code = '0', '21610'
end
local logged = status
if not logged or logged == '0' then logged = '0' end
redis.call('RPUSH', KEYS[5], ARGV[2] .. '|' .. ARGV[3] .. '|' .. logged)
if ARGV[1] ~= '1' then return {false, false, delay} end
local c = tonumber(code or '0') or 0
if ARGV[5] == '1' and not (status and tonumber(status) ~= 0) and (c == 0 or (c >= 30000 and c < 31000)) then
  local state = ARGV[9]
  if state == '' then
    state = 'delivered'
    if c >= 30003 and c <= 30008 then state = 'undelivered' elseif c ~= 0 then state = 'failed' end
  end
  kb_deliver(KEYS[7], KEYS[8], KEYS[9], ARGV[12],
    ARGV[6], ARGV[7], ARGV[8], state, ARGV[2], ARGV[10], ARGV[11])
  redis.call('RPUSH', KEYS[10], ARGV[2] .. '|' .. ARGV[10])
end
return {status, code, delay}
"""
)


@dataclass(frozen=True)
class Accepted:
    """A well-formed message, stored when the API accepts it (`arrive`)."""

    sid: str
    to: str  # the number, without a channel prefix
    body: str
    segments: int
    channel: str  # "twilio", or "twilio:whatsapp"
    reported: bool  # a status callback will move it on; else it is stored with its final status


def set_failure(redis: Redis, count: int, status: int, code: int) -> None:
    redis.hset(FAILURE, mapping={"remaining": count, "status": status, "code": code})


def set_delay(redis: Redis, seconds: float) -> None:
    redis.set(DELAY, f"{seconds:.3f}")


def delay(redis: Redis) -> float:
    """How long to stall each answer (0 unless a test asked)."""
    return float(redis.get(DELAY) or 0)


def arrive(
    redis: Redis,
    authorised: bool,
    now: float | None = None,
    num_segments: int = 1,
    to: str = "",
    message: Accepted | None = None,
) -> tuple[tuple[int, int] | None, float]:
    """Count and log an API request (arrived at `now`, carrying `num_segments`, for `to`);
    for an authorised one, take the failure tests asked for, if any, or refuse a recipient
    who opted out; and store `message` (a well-formed request's) if the API then accepts it.
    Returns (the (HTTP status, Twilio code) to fail with, or None; seconds to stall). One
    round trip: this runs for every SMS of a fan-out."""
    now = time.time() if now is None else now
    script_keys = [REQUESTS, FAILURE, DELAY, OUTAGE, REQUEST_LOG, OPTED_OUT]
    args: list[str | int] = ["1" if authorised else "0", f"{now:.6f}", max(1, num_segments)]
    args.append(handsets.number_hash(to))
    if message is not None:
        recipient = handsets.number_hash(message.to)
        script_keys += [handsets.message_key(message.sid), handsets.inbox_key(recipient)]
        script_keys += [handsets.BY_RECIPIENT, ARRIVALS]
        args += ["1", message.sid, message.channel, message.body, "queued" if message.reported else ""]
        args += [message.segments, handsets.INBOX_KEEP, recipient]
    status, code, stall = scripts.load(redis, _ARRIVE)(keys=script_keys, args=args)
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


def set_opted_out(redis: Redis, number: str, opted_out: bool) -> None:
    """Put a phone on Twilio's blocklist (it texted STOP) or take it off (START)."""
    if opted_out:
        redis.sadd(OPTED_OUT, handsets.number_hash(number))
    else:
        redis.srem(OPTED_OUT, handsets.number_hash(number))


def is_opted_out(redis: Redis, number: str) -> bool:
    return bool(redis.sismember(OPTED_OUT, handsets.number_hash(number)))


def requests_received(redis: Redis) -> int:
    """Every request the Messages API got, accepted or not."""
    return int(redis.get(REQUESTS) or 0)


def arrivals(redis: Redis) -> list[tuple[float, int]]:
    """(time, segments) of every accepted message, in arrival order."""
    rows = (row.split("|") for row in cast(list[str], redis.lrange(ARRIVALS, 0, -1)))
    return [(float(t), int(n)) for t, n in rows]
