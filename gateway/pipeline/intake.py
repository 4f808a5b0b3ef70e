"""Received texts: parsed from Twilio's webhook, stored durably, queued for the workers.

The webhook's only Redis work is one script call: it records the MessageSid (so a
repeat is recognised), stores the text with the number already encrypted, and appends
the sid to the inbox. Turning texts into posts is the workers' job (see `inbox.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from redis import Redis

from gateway.phones import PhoneVault
from gateway.store import keys, scripts, stats

MAX_MEDIA = 10  # Twilio sends at most 10 media items per MMS
SEEN_TTL_SECONDS = 7 * 24 * 3600  # Twilio's retries and our replays arrive well within this
DRAIN_SCHEDULE_TTL_MS = 30_000  # a drain job that died frees the slot after this

# KEYS: seen marker, message hash, inbox, drain-scheduled flag, stats total, stats minute
# ARGV: sid, seen ttl, flag ttl ms, stats ttl, field/value pairs…
# Returns 0 for a repeat, 1 for stored, 2 for stored and "please enqueue a drain job".
# The console's counters ride along in the same call (no extra round trip per text).
_INGEST = (
    stats.LUA_COUNT
    + """
if not redis.call('SET', KEYS[1], '0', 'NX', 'EX', ARGV[2]) then
  kb_count(KEYS[5], KEYS[6], ARGV[4], 'duplicate', 1)
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('RPUSH', KEYS[3], ARGV[1])
kb_count(KEYS[5], KEYS[6], ARGV[4], 'received', 1)
if redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[3]) then return 2 end
return 1
"""
)


class MalformedMessage(ValueError):
    """The webhook's form lacks what every Twilio message has."""


@dataclass(frozen=True)
class InboundSMS:
    """A text as Twilio delivered it; `sender` is the plain number and never leaves memory."""

    message_sid: str
    sender: str
    body: str
    media: tuple[str, ...] = ()
    received_at: float = field(default_factory=time.time)

    @classmethod
    def from_twilio(cls, form: Mapping[str, str]) -> InboundSMS:
        """Read Twilio's fields (MessageSid, From, Body, NumMedia, MediaUrl<n>)."""
        sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
        sender = (form.get("From") or "").strip()
        if not sid or not sender:
            raise MalformedMessage("MessageSid and From are required")
        if len(sid) > 64 or not sid.isascii() or not sid.isprintable():
            raise MalformedMessage("MessageSid is not a Twilio message id")
        try:
            num_media = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
        except ValueError:
            raise MalformedMessage("NumMedia is not a number") from None
        media = tuple(url for n in range(max(num_media, 0)) if (url := form.get(f"MediaUrl{n}", "").strip()))
        return cls(message_sid=sid, sender=sender, body=form.get("Body") or "", media=media)


def store(redis: Redis, vault: PhoneVault, sms: InboundSMS) -> str:
    """Store and queue a text in one round trip. Returns "duplicate", "stored" or "schedule"."""
    from_key, from_encrypted = vault.protect(sms.sender)
    fields = {
        "sid": sms.message_sid,
        "from_key": from_key,
        "from": from_encrypted,
        "body": sms.body,
        "at": f"{sms.received_at:.3f}",
    }
    if sms.media:
        fields["media"] = json.dumps(sms.media)
    script = scripts.load(redis, _INGEST)
    result = script(
        keys=[
            keys.seen_message(sms.message_sid),
            keys.inbound_message(sms.message_sid),
            keys.INBOX,
            keys.INBOX_DRAIN_SCHEDULED,
            *stats.lua_keys(sms.received_at),
        ],
        args=[
            sms.message_sid,
            SEEN_TTL_SECONDS,
            DRAIN_SCHEDULE_TTL_MS,
            stats.MINUTE_TTL_SECONDS,
            *(x for pair in fields.items() for x in pair),
        ],
    )
    return {0: "duplicate", 1: "stored", 2: "schedule"}[int(result)]
