"""The workers' side of the inbox: drain jobs take stored texts in batches until none wait.

The inbox is a worklist (`gateway.store.worklist`): a drain job claims a batch of message
ids, hands it to `batch.process`, then acks the claim. A worker killed mid-batch leaves
its claim behind; `reclaim_stale` puts those ids back at the head of the inbox, in their
order, and because a post records the text it came from, redoing one is harmless.

At most one drain job is scheduled at a time (`keys.INBOX_DRAIN_SCHEDULED`, set by the
webhook's script when it stores a text): the job that empties the inbox frees the slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis import Redis

from gateway.pipeline import batch
from gateway.pipeline.intake import DRAIN_SCHEDULE_TTL_MS, INBOX
from gateway.runtime import Runtime
from gateway.store import keys, stats

log = logging.getLogger(__name__)

BATCH = 200
CLAIM_STALE_SECONDS = 30.0  # a batch takes well under a second; older claims are orphans


def reclaim_stale(redis: Redis, older_than: float = CLAIM_STALE_SECONDS) -> int:
    """Put the texts of dead drain jobs back at the head of the inbox; returns how many."""
    returned, claims = INBOX.reclaim_stale(redis, older_than)
    if returned:
        log.warning("returned %d texts from %d abandoned batches to the inbox", returned, claims)
    return returned


def drain(runtime: Runtime, process_batch: Callable[[Runtime, list[str]], object] = batch.process) -> int:
    """Process the inbox until it is empty; returns how many texts this call handled."""
    redis = runtime.redis
    handled = 0
    while True:
        claim = INBOX.claim(redis, BATCH)
        if not claim.ids:
            # Free the slot, then look once more: a text stored between our last look and
            # the delete saw the slot taken and did not schedule a job, so it is ours.
            redis.delete(keys.INBOX_DRAIN_SCHEDULED)
            if redis.llen(keys.INBOX) == 0:
                return handled
            redis.set(keys.INBOX_DRAIN_SCHEDULED, "1", px=DRAIN_SCHEDULE_TTL_MS)
            continue
        redis.pexpire(keys.INBOX_DRAIN_SCHEDULED, DRAIN_SCHEDULE_TTL_MS)
        made = process_batch(runtime, claim.ids)
        pipe = redis.pipeline(transaction=False)
        INBOX.ack(pipe, claim.token)
        stats.record_many(
            pipe, {"drained": len(claim.ids), "posts": len(made) if isinstance(made, list) else 0}
        )
        pipe.execute()
        handled += len(claim.ids)


def needs_drain(redis: Redis) -> bool:
    """Whether texts wait with no drain job scheduled: claims the slot if so (watchdog)."""
    if redis.llen(keys.INBOX) == 0:
        return False
    return bool(redis.set(keys.INBOX_DRAIN_SCHEDULED, "1", nx=True, px=DRAIN_SCHEDULE_TTL_MS))
