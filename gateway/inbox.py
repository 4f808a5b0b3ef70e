"""The workers' side of the inbound pipeline: stored texts become posts, in batches.

A drain job claims a batch of MessageSids by moving them from the inbox into a claim
list of its own (atomically), makes the posts, then drops the claim. A worker killed
mid-batch leaves its claim behind; `reclaim_stale` puts such sids back at the head of
the inbox, and because a post records its MessageSid, redoing one is harmless.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis

from gateway import keys, posts, subscribers
from gateway.inbound import DRAIN_SCHEDULE_TTL_MS

log = logging.getLogger(__name__)

BATCH = 200
CLAIM_STALE_SECONDS = 30.0  # a batch takes well under a second; older claims are orphans

# KEYS: inbox, claim list, claims zset.  ARGV: batch size, token, now
_CLAIM = """
local sids = redis.call('LPOP', KEYS[1], ARGV[1])
if not sids then return {} end
redis.call('RPUSH', KEYS[2], unpack(sids))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return sids
"""

# KEYS: inbox, claim list, claims zset.  ARGV: token
_RETURN_CLAIM = """
local sids = redis.call('LRANGE', KEYS[2], 0, -1)
if #sids > 0 then redis.call('LPUSH', KEYS[1], unpack(sids)) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return #sids
"""


@dataclass(frozen=True)
class StoredText:
    """A text read back from Redis: the sender only as keyed hash and ciphertext."""

    sid: str
    from_key: str
    from_encrypted: str
    body: str
    media: tuple[str, ...]
    received_at: float


def _read(redis: Redis, sids: list[str]) -> list[StoredText]:
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hgetall(keys.inbound_message(sid))
    texts = []
    for sid, h in zip(sids, pipe.execute(), strict=True):
        if not h:  # already posted and cleaned up by an earlier run of this batch
            continue
        texts.append(
            StoredText(
                sid=sid,
                from_key=h["from_key"],
                from_encrypted=h["from"],
                body=h.get("body", ""),
                media=tuple(json.loads(h["media"])) if h.get("media") else (),
                received_at=float(h.get("at", "0")),
            )
        )
    return texts


def _authors(redis: Redis, texts: list[StoredText]) -> dict[str, subscribers.Subscriber]:
    """The subscriber behind each sender, registering first-time texters."""
    lookup_keys = list(dict.fromkeys(t.from_key for t in texts))
    found = dict(zip(lookup_keys, subscribers.find_ids(redis, lookup_keys), strict=True))
    authors: dict[str, subscribers.Subscriber] = {}
    encrypted = {t.from_key: t.from_encrypted for t in texts}
    for key, sub_id in found.items():
        if sub_id is None:
            authors[key] = subscribers.register(redis, key, encrypted[key])
        else:
            authors[key] = subscribers.Subscriber(sub_id, "")
    return authors


def process(redis: Redis, sids: list[str]) -> list[int]:
    """Turn stored texts into posts (one per MessageSid, however often this runs)."""
    texts = _read(redis, sids)
    if not texts:
        return []
    authors = _authors(redis, texts)
    new_posts = [
        posts.NewPost(
            body=t.body,
            source="sms",
            author_id=authors[t.from_key].id,
            media=t.media,
            message_sid=t.sid,
            created_at=t.received_at,
        )
        for t in texts
    ]
    post_ids = posts.create_many(redis, new_posts)
    redis.delete(*(keys.inbound_message(t.sid) for t in texts))
    return post_ids


def reclaim_stale(redis: Redis, older_than: float = CLAIM_STALE_SECONDS) -> int:
    """Put the sids of dead drain jobs back at the head of the inbox; returns how many."""
    stale = redis.zrangebyscore(keys.INBOX_CLAIMS, "-inf", time.time() - older_than)
    script = redis.register_script(_RETURN_CLAIM)
    returned = 0
    for token in stale:
        returned += int(script(keys=[keys.INBOX, keys.inbox_claim(token), keys.INBOX_CLAIMS], args=[token]))
    if returned:
        log.warning("returned %d texts from %d abandoned batches to the inbox", returned, len(stale))
    return returned


def drain(redis: Redis, process_batch: Callable[[Redis, list[str]], object] = process) -> int:
    """Process the inbox until it is empty; returns how many texts this call handled."""
    claim = redis.register_script(_CLAIM)
    handled = 0
    while True:
        token = uuid.uuid4().hex
        claim_key = keys.inbox_claim(token)
        sids = claim(keys=[keys.INBOX, claim_key, keys.INBOX_CLAIMS], args=[BATCH, token, time.time()])
        if not sids:
            # Free the slot, then look once more: a text stored between our last look and
            # the delete saw the slot taken and did not schedule a job, so it is ours.
            redis.delete(keys.INBOX_DRAIN_SCHEDULED)
            if redis.llen(keys.INBOX) == 0:
                return handled
            redis.set(keys.INBOX_DRAIN_SCHEDULED, "1", px=DRAIN_SCHEDULE_TTL_MS)
            continue
        redis.pexpire(keys.INBOX_DRAIN_SCHEDULED, DRAIN_SCHEDULE_TTL_MS)
        process_batch(redis, sids)
        pipe = redis.pipeline(transaction=False)
        pipe.delete(claim_key)
        pipe.zrem(keys.INBOX_CLAIMS, token)
        pipe.execute()
        handled += len(sids)


def needs_drain(redis: Redis) -> bool:
    """Whether texts wait with no drain job scheduled: claims the slot if so (watchdog)."""
    if redis.llen(keys.INBOX) == 0:
        return False
    return bool(redis.set(keys.INBOX_DRAIN_SCHEDULED, "1", nx=True, px=DRAIN_SCHEDULE_TTL_MS))
