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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from redis import ConnectionPool, Redis
from rq import Queue

from gateway.commands import actions, conversation
from gateway.config import Config
from gateway.microblog import moderation, posts, subscribers
from gateway.outbox import fanout
from gateway.pipeline import throttle
from gateway.pipeline.intake import DRAIN_SCHEDULE_TTL_MS
from gateway.store import keys, queues, scripts, stats

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


def _queues_beside(redis: Redis) -> dict[str, Queue]:
    """RQ queues on the same server as `redis` (whose replies are decoded; RQ's must not be)."""
    pool = redis.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return queues.make_queues(
        Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))
    )


def process(
    redis: Redis,
    sids: list[str],
    rq_queues: Mapping[str, Queue] | None = None,
    config: Config | None = None,
) -> list[int]:
    """Turn stored texts into posts and commands (each once per MessageSid, however often this runs).

    Posts are made in one round trip and fanned out by one job per batch; commands are
    carried out and answered; a first-time texter is welcomed. Every SMS this queues is
    keyed by an intent (`answer:<sid>`, `welcome:<id>`, `post:<id>`), so running a batch
    again queues nothing twice. Returns the ids of the posts made.
    """
    texts = _read(redis, sids)
    if not texts:
        return []
    config = config or Config()
    out = actions.Outbox(
        redis, rq_queues or _queues_beside(redis), config.public_url, config.sms_max_segments
    )
    authors = _authors(redis, texts)
    sorted_ = conversation.sort(redis, [(t.sid, t.body) for t in texts])
    # A blocked handle's texts make no post (they are counted); its commands still run,
    # so a blocked texter can still opt out or ask to be forgotten.
    blocked = moderation.blocked_among(redis, [a.id for a in authors.values()])
    held = [t for t in texts if t.sid in sorted_.posts and authors[t.from_key].id in blocked]
    if held:
        moderation.count_blocked(redis, len(held))
    # Over SENDER_POSTS_PER_MINUTE: kept, and posted once the minute has passed.
    deferred = set(
        throttle.over_limit(
            redis,
            [
                (t.sid, authors[t.from_key].id)
                for t in texts
                if t.sid in sorted_.posts and authors[t.from_key].id not in blocked
            ],
            config.sender_posts_per_minute,
            time.time(),
        )
    )
    new_posts = [
        posts.NewPost(
            body=t.body,
            source="sms",
            author_id=authors[t.from_key].id,
            reply_to=sorted_.posts[t.sid],
            media=t.media,
            message_sid=t.sid,
            created_at=t.received_at,
        )
        for t in texts
        if t.sid in sorted_.posts and authors[t.from_key].id not in blocked and t.sid not in deferred
    ]
    post_ids = posts.create_many(redis, new_posts) if new_posts else []
    first_texts: dict[str, StoredText] = {}
    for t in texts:
        first_texts.setdefault(t.from_key, t)
    for key, t in first_texts.items():
        if authors[key].is_new:
            conversation.welcome(out, authors[key].id, authors[key].handle, t.body)
    conversation.run(
        out,
        [
            (t.sid, authors[t.from_key].id, t.from_key, sorted_.commands[t.sid])
            for t in texts
            if t.sid in sorted_.commands
        ],
    )
    fanout.enqueue(out.rq_queues, post_ids)  # before the texts go: a rerun must still fan out
    pipe = redis.pipeline(transaction=False)
    done = [t for t in texts if t.sid not in deferred]
    if done:
        pipe.delete(*(keys.inbound_message(t.sid) for t in done))
    now = time.time()
    stats.observe_latencies(pipe, "webhook_to_post", (now - t.received_at for t in done))
    pipe.execute()
    return post_ids


def reclaim_stale(redis: Redis, older_than: float = CLAIM_STALE_SECONDS) -> int:
    """Put the sids of dead drain jobs back at the head of the inbox; returns how many."""
    stale = cast(list[str], redis.zrangebyscore(keys.INBOX_CLAIMS, "-inf", time.time() - older_than))
    script = scripts.load(redis, _RETURN_CLAIM)
    returned = 0
    for token in stale:
        returned += int(script(keys=[keys.INBOX, keys.inbox_claim(token), keys.INBOX_CLAIMS], args=[token]))
    if returned:
        log.warning("returned %d texts from %d abandoned batches to the inbox", returned, len(stale))
    return returned


def drain(redis: Redis, process_batch: Callable[[Redis, list[str]], object] = process) -> int:
    """Process the inbox until it is empty; returns how many texts this call handled."""
    claim = scripts.load(redis, _CLAIM)
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
        made = process_batch(redis, sids)
        pipe = redis.pipeline(transaction=False)
        pipe.delete(claim_key)
        pipe.zrem(keys.INBOX_CLAIMS, token)
        stats.record_many(pipe, {"drained": len(sids), "posts": len(made) if isinstance(made, list) else 0})
        pipe.execute()
        handled += len(sids)


def needs_drain(redis: Redis) -> bool:
    """Whether texts wait with no drain job scheduled: claims the slot if so (watchdog)."""
    if redis.llen(keys.INBOX) == 0:
        return False
    return bool(redis.set(keys.INBOX_DRAIN_SCHEDULED, "1", nx=True, px=DRAIN_SCHEDULE_TTL_MS))
