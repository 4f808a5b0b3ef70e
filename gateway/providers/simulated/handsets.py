"""The simulated handsets: what each phone received from a provider simulator, and what
the dev phone texted from it, in Redis so every web worker agrees.

All of it lives under keys.SIMULATOR_PREFIX ("the providers, not us"). A phone appears
only as the SHA-256 of its number, so a scan of the whole Redis for phone numbers finds
none, here included. Every message notes the channel (provider) it came through.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from gateway.phones import normalize
from gateway.store import keys, scripts

P = keys.SIMULATOR_PREFIX
BY_RECIPIENT = P + "by-recipient"  # hash: number hash -> messages accepted for it
INBOX_KEEP = 200  # messages kept per phone

# KEYS: message.  ARGV: status.  Only a message that still exists (tests flush between runs).
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'status', ARGV[1]) end
"""


def number_hash(number: str) -> str:
    return hashlib.sha256(normalize(number).encode()).hexdigest()


def message_key(message_id: str) -> str:
    return f"{P}msg:{message_id}"


def inbox_key(h: str) -> str:
    """A phone's inbox (`h`: the hash of its number)."""
    return f"{P}inbox:{h}"


def _texted(h: str) -> str:
    return f"{P}texted:{h}"


# `deliver` for a script that stores an accepted SMS in the same call that accepts it (the
# Twilio simulator's): KEYS the message's hash, the recipient's inbox, BY_RECIPIENT; the
# recipient's number hash; the rest as `deliver` takes them, `keep` being INBOX_KEEP.
LUA_DELIVER = """
local function kb_deliver(message, inbox, by_recipient, h, sid, channel, body, status, at, segments, keep)
  redis.call('HSET', message, 'sid', sid, 'channel', channel, 'body', body, 'status', status,
    'time', at, 'segments', segments)
  redis.call('RPUSH', inbox, sid)
  redis.call('LTRIM', inbox, -tonumber(keep), -1)
  redis.call('HINCRBY', by_recipient, h, 1)
end
"""


def deliver(
    pipe: Pipeline,
    channel: str,
    message_id: str,
    to: str,
    body: str,
    segments: int,
    arrived: float,
    status: str = "queued",
) -> None:
    """Put an SMS a provider accepted in its recipient's inbox (in the caller's pipeline)."""
    h = number_hash(to)
    pipe.hset(
        message_key(message_id),
        mapping={
            "sid": message_id,
            "channel": channel,
            "body": body,
            "status": status,
            "time": f"{arrived:.6f}",
            "segments": segments,
        },
    )
    pipe.rpush(inbox_key(h), message_id)
    pipe.ltrim(inbox_key(h), -INBOX_KEEP, -1)
    pipe.hincrby(BY_RECIPIENT, h, 1)


def set_status(redis: Redis, message_id: str, status: str) -> None:
    """Move a delivered SMS on ("sent", "delivered", "failed" …), as its provider reports it."""
    scripts.load(redis, _SET_STATUS)(keys=[message_key(message_id)], args=[status])


def inbox_for(redis: Redis, number: str) -> list[dict[str, Any]]:
    """The SMS this phone received, oldest first: sid, channel, body, status, time, segments."""
    ids = cast(list[str], redis.lrange(inbox_key(number_hash(number)), 0, -1))
    pipe = redis.pipeline(transaction=False)
    for message_id in ids:
        pipe.hgetall(message_key(message_id))
    return [
        {
            "sid": m["sid"],
            "channel": m.get("channel", ""),
            "body": m.get("body", ""),
            "status": m.get("status", ""),
            "time": float(m.get("time", 0)),
            "segments": int(m.get("segments", 1)),
        }
        for m in pipe.execute()
        if m.get("sid")
    ]


def received_count(redis: Redis, number: str) -> int:
    """How many SMS providers accepted for this phone."""
    return int(redis.hget(BY_RECIPIENT, number_hash(number)) or 0)


def sent_count_by_recipient(redis: Redis) -> dict[str, int]:
    """SMS accepted per recipient, keyed by the hash of the number."""
    counts = cast(dict[str, str], redis.hgetall(BY_RECIPIENT))
    return {h: int(n) for h, n in counts.items()}


def record_texted(redis: Redis, number: str, body: str, http_status: int, channel: str = "") -> None:
    """Remember a text the dev phone sent to the gateway, and what the webhook answered."""
    key = _texted(number_hash(number))
    entry = {"body": body, "time": time.time(), "status": http_status, "channel": channel}
    pipe = redis.pipeline(transaction=False)
    pipe.rpush(key, json.dumps(entry))
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


def reset(redis: Redis) -> None:
    """Forget everything every simulator holds (handsets, and each simulator's own records)."""
    found = list(redis.scan_iter(match=P + "*", count=1000))
    for start in range(0, len(found), 500):
        redis.delete(*found[start : start + 500])
