"""Received texts, accepted: stored durably and queued for the workers.

Whatever provider a text came through, its webhook hands it over here as a neutral
`InboundText`. Storing it is one script call: it records the message id (so a repeat is
recognised), stores the text with the number already encrypted, and appends the id to
the inbox; only then, and once as many replicas as REDIS_WAIT_REPLICAS asks for have it
(`store.replicated`, in the same round trip), may the webhook say "got it". Turning texts into posts is the
workers' job (see `inbox.py`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from gateway import phones
from gateway.microblog import media
from gateway.phones import PhoneVault
from gateway.providers.records import InboundText
from gateway.runtime import Runtime
from gateway.store import history, keys, queues, scripts, stats
from gateway.store.group_commit import GroupCommit
from gateway.store.replicated import NONE, Replication
from gateway.store.worklist import Worklist

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 7 * 24 * 3600  # a provider's retries and our replays arrive well within this
DRAIN_SCHEDULE_TTL_MS = 30_000  # a drain job that died frees the slot after this

# The texts waiting to become posts or commands, by message id.
INBOX = Worklist(keys.INBOX, keys.INBOX_CLAIMS, keys.inbox_claim)

# KEYS: seen marker, message hash, inbox, drain-scheduled flag, stats total, stats minute,
# then the history's record and its indexes of every message and of the channel's.
# ARGV: message id, seen ttl, flag ttl ms, stats ttl, channel, history score (ms), when it
# was received and stored, the masked country code, field/value pairs…
# Returns 0 for a repeat, 1 for stored, 2 for stored and "please enqueue a drain job".
# The console's counters ride along in the same call (no extra round trip per text).
_INGEST = (
    stats.LUA_COUNT
    + """
if not redis.call('SET', KEYS[1], '0', 'NX', 'EX', ARGV[2]) then
  kb_count(KEYS[5], KEYS[6], ARGV[4], 'duplicate', 1)
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 10))
redis.call('RPUSH', KEYS[3], ARGV[1])
-- The history: received and stored (gateway/store/history.py; the drain batch sets expiries).
redis.call('HSET', KEYS[7], 'at', ARGV[7], 'st', ARGV[8], 'ch', ARGV[5], 'cc', ARGV[9])
redis.call('ZADD', KEYS[8], ARGV[6], 'in-' .. ARGV[1])
redis.call('ZADD', KEYS[9], ARGV[6], 'in-' .. ARGV[1])
kb_count(KEYS[5], KEYS[6], ARGV[4], 'received', 1)
kb_count(KEYS[5], KEYS[6], ARGV[4], 'received@' .. ARGV[5], 1)
if redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[3]) then return 2 end
return 1
"""
)


def store(redis: Redis, vault: PhoneVault, text: InboundText, replication: Replication = NONE) -> str:
    """Store and queue a text in one round trip. Returns "duplicate", "stored" or "schedule"."""
    return store_many(redis, vault, [text], replication)[0]


def store_many(
    redis: Redis, vault: PhoneVault, texts: Sequence[InboundText], replication: Replication = NONE
) -> list[str]:
    """`store` for several texts in one pipelined round trip, hence (appendfsync always)
    one fsync of Redis's append-only file for all of them. Raises RedisError if any may
    not have been stored, NotReplicated if `replication`'s replicas did not confirm them.

    Redis answers a pipeline only after the fsync that covers all of it, and the WAIT for
    replicas ends the same pipeline (WAIT counts the writes made on its own connection). A
    repeat is confirmed too: its first copy, stored by whichever request, is what must be
    replicated, and the repeat's own count follows it in the replication stream."""
    calls = [_ingest_call(vault, text) for text in texts]
    results = replication.run_many(redis, scripts.load(redis, _INGEST), calls)
    return [_OUTCOMES[int(result)] for result in results]


_OUTCOMES = {0: "duplicate", 1: "stored", 2: "schedule"}


def _ingest_call(vault: PhoneVault, text: InboundText) -> tuple[list[str], list[str | int]]:
    """The _INGEST script's keys and arguments for one text (its number encrypted)."""
    from_key, from_encrypted = vault.protect(text.sender)
    at = text.received_at
    fields = {
        "sid": text.message_id,
        "from_key": from_key,
        "from": from_encrypted,
        "body": text.body,
        "at": f"{text.received_at:.3f}",
        "ch": text.channel,
        "cc": phones.country_code(text.sender),  # "+98": the history shows it, nothing more
    }
    if text.prefix:
        fields["pre"] = text.prefix
    if text.media:
        fields["media"] = json.dumps(text.media)
    script_keys = [
        keys.seen_message(text.message_id),
        keys.inbound_message(text.message_id),
        keys.INBOX,
        keys.INBOX_DRAIN_SCHEDULED,
        *stats.lua_keys(text.received_at),
        keys.history_inbound(text.message_id),
        *(history.index(at, name) for name in (history.ALL, history.by_provider(text.channel))),
    ]
    args: list[str | int] = [
        text.message_id,
        SEEN_TTL_SECONDS,
        DRAIN_SCHEDULE_TTL_MS,
        stats.MINUTE_TTL_SECONDS,
        text.channel,
        history.score(at),
        fields["at"],
        f"{time.time():.3f}",
        fields["cc"],
        *(x for pair in fields.items() for x in pair),
    ]
    return script_keys, args


def schedule_drain(rq_queues: dict[str, Queue]) -> None:
    """Ask a worker to turn the waiting texts into posts."""
    queues.enqueue(rq_queues, queues.DRAIN_INBOX, description="drain inbox")


# One group commit per Redis client: the web process's request threads share it (see
# gateway/store/group_commit.py), so concurrent webhooks share Redis's fsync.
_committers: weakref.WeakKeyDictionary[Redis, GroupCommit[InboundText, str]] = weakref.WeakKeyDictionary()
_committers_lock = threading.Lock()


def _group_commit(runtime: Runtime) -> GroupCommit[InboundText, str]:
    with _committers_lock:
        found = _committers.get(runtime.redis)
        if found is None:
            found = _committers[runtime.redis] = GroupCommit(_store_many_with(runtime))
        return found


def _store_many_with(runtime: Runtime) -> Callable[[Sequence[InboundText]], list[str]]:
    # A weak reference, or the committer (the dictionary's value) would keep its key alive.
    redis_ref, vault, replication = weakref.ref(runtime.redis), runtime.vault, runtime.replication

    def commit(texts: Sequence[InboundText]) -> list[str]:
        redis = redis_ref()
        if redis is None:  # no caller can hold a Runtime whose client is gone
            raise RuntimeError("the Redis client of this group commit is gone")
        return store_many(redis, vault, texts, replication)

    return commit


def accept(runtime: Runtime, text: InboundText) -> str:
    """Store a checked text in the inbox and see that a drain job will post it; returns
    `store`'s outcome. Raises RedisError when the text may not have been stored, or not
    replicated (NotReplicated): the webhook must not say "got it" then. Texts that threads
    accept at the same time are stored together (`store_many`), and each call returns once
    the batch holding its text is durably stored (and replicated).

    Media URLs other than https (http too with MEDIA_ALLOW_HTTP) are dropped here, at the
    one door every provider's texts come through: a reader would get them as links."""
    if text.media:
        text = replace(text, media=tuple(media.kept(text.media, runtime.config.media_allow_http)))
    outcome = _group_commit(runtime).submit(text)
    if outcome == "schedule":
        try:
            schedule_drain(runtime.queues)
        except RedisError:
            # The text is safe in the inbox; a worker's watchdog schedules the drain.
            log.warning("stored %s but could not enqueue its drain job", text.message_id)
    return outcome
