"""A worklist: a Redis list of ids that jobs take in batches, without a moment in which a
crash can lose one.

The inbox of texts and each lane of outbound SMS are worklists. A job `claim`s a batch by
moving ids from the head of the list into a claim list of its own, atomically, and notes
the claim's time in a zset. When it is done it `ack`s (drops the claim), or `give_back`s
what it did not get to. A job killed mid-batch leaves its claim behind; `reclaim_stale`
puts such ids back at the head of the list in their original order, so they are taken
next, as they would have been. The work itself must be safe to redo (a text records the
post it made, an SMS the send it began), because a claim taken back may have been
half done.

Ids due later wait in a zset scored by when (throttled texts, SMS retries); `promote_due`
moves those whose time has come to the tail of the list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from redis import Redis
from redis.client import Pipeline

from gateway.store import scripts

# KEYS: list, claim list, claims zset.  ARGV: most to take, token, now.
_CLAIM = """
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if not ids then return {} end
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return ids
"""
# KEYS: list, claim list, claims zset.  ARGV: token.  Back to the head, in their order.
_GIVE_BACK = """
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
for i = #ids, 1, -1 do redis.call('LPUSH', KEYS[1], ids[i]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return #ids
"""
# KEYS: due zset, list.  ARGV: now, most to move.
_PROMOTE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('RPUSH', KEYS[2], unpack(ids))
return #ids
"""


@dataclass(frozen=True)
class Claim:
    """A batch one job holds: its `token` names the claim list, `ids` are in list order."""

    token: str
    ids: list[str]


@dataclass(frozen=True)
class Worklist:
    """The keys of one worklist (see `gateway.store.keys`)."""

    key: str  # the list of ids waiting
    claims_key: str  # zset: claim token -> when it was taken (or last touched)
    claim_key_of: Callable[[str], str]  # token -> the list of ids that claim holds

    def claim(self, redis: Redis, most: int, now: float | None = None) -> Claim:
        """Take up to `most` ids from the head; `ids` is empty when the list is."""
        token = uuid.uuid4().hex
        now = time.time() if now is None else now
        ids = scripts.load(redis, _CLAIM)(
            keys=[self.key, self.claim_key_of(token), self.claims_key], args=[most, token, now]
        )
        return Claim(token, [str(i) for i in ids])

    def ack(self, r: Redis | Pipeline, token: str) -> None:
        """The claim's work is done: drop it (with a pipeline, as part of that pipeline)."""
        if isinstance(r, Pipeline):
            r.delete(self.claim_key_of(token))
            r.zrem(self.claims_key, token)
            return
        pipe = r.pipeline(transaction=False)
        self.ack(pipe, token)
        pipe.execute()

    def give_back(self, redis: Redis, token: str) -> int:
        """Return what the claim still holds to the head of the list, in order; returns how many."""
        keys = [self.key, self.claim_key_of(token), self.claims_key]
        return int(scripts.load(redis, _GIVE_BACK)(keys=keys, args=[token]))

    def reclaim_stale(self, redis: Redis, older_than: float) -> tuple[int, int]:
        """Give back every claim taken (or touched) more than `older_than` seconds ago: a
        dead job's. Returns (ids returned, claims given back)."""
        stale = cast(list[str], redis.zrangebyscore(self.claims_key, "-inf", time.time() - older_than))
        return sum(self.give_back(redis, token) for token in stale), len(stale)

    def claimed(self, redis: Redis) -> list[str]:
        """Every id some claim holds now (for FORGET ME's sweep)."""
        tokens = cast(list[str], redis.zrange(self.claims_key, 0, -1))
        pipe = redis.pipeline(transaction=False)
        for token in tokens:
            pipe.lrange(self.claim_key_of(token), 0, -1)
        return [str(i) for found in pipe.execute() for i in found] if tokens else []


def promote_due(redis: Redis, due_key: str, list_key: str, now: float | None = None, most: int = 1000) -> int:
    """Move ids whose time in the zset `due_key` has come to the tail of `list_key`."""
    now = time.time() if now is None else now
    return int(scripts.load(redis, _PROMOTE)(keys=[due_key, list_key], args=[f"{now:.3f}", most]))
