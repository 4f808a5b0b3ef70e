"""SENDER_POSTS_PER_MINUTE: a texter posting faster than the limit is slowed, not silenced.

Texts over the limit are kept exactly as they are (still stored, still encrypted) and
wait in a deferred set until the next minute, when the workers' watchdog returns them
to the inbox. They count against that minute's limit, so a flood becomes a steady
trickle and nothing is lost. Commands are never throttled: STOP must always work.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import cast

from redis import Redis

from gateway.store import keys, stats, worklist


def over_limit(redis: Redis, candidates: Sequence[tuple[str, int]], limit: int, now: float) -> list[str]:
    """The message ids of would-be posts beyond each author's limit this minute.

    `candidates` are (sid, author id) in arrival order; an author's earliest texts pass.
    A limit of 0 or less means no limit.
    """
    if limit <= 0 or not candidates:
        return []
    minute = int(now // 60)
    wanted = Counter(author for _, author in candidates)
    authors = list(wanted)
    pipe = redis.pipeline(transaction=False)
    for author in authors:
        pipe.incrby(keys.post_rate(author, minute), wanted[author])
        pipe.expire(keys.post_rate(author, minute), 120)
    totals = dict(zip(authors, cast(list[int], pipe.execute()[::2]), strict=True))
    allowed = {a: max(0, limit - (totals[a] - wanted[a])) for a in authors}
    excess = {a: wanted[a] - allowed[a] for a in authors if wanted[a] > allowed[a]}
    if not excess:
        return []
    held: list[str] = []
    seen: Counter[int] = Counter()
    for sid, author in candidates:
        seen[author] += 1
        if seen[author] > allowed[author]:
            held.append(sid)
    pipe = redis.pipeline(transaction=False)
    for author, n in excess.items():
        pipe.decrby(keys.post_rate(author, minute), n)  # held texts count when they post
    pipe.zadd(keys.INBOX_DEFERRED, {sid: (minute + 1) * 60 for sid in held})
    stats.record(pipe, "throttled", len(held))
    pipe.execute()
    return held


def promote_due(redis: Redis, now: float | None = None, most: int = 1000) -> int:
    """Return texts whose wait is over to the inbox; returns how many."""
    return worklist.promote_due(redis, keys.INBOX_DEFERRED, keys.INBOX, now, most)


def forget(redis: Redis, sub_id: int) -> None:
    """Drop a texter's counters (FORGET ME)."""
    minute = int(time.time() // 60)
    # Counters live two minutes (`over_limit`); a clock a minute off is covered.
    redis.delete(*(keys.post_rate(sub_id, m) for m in (minute - 2, minute - 1, minute, minute + 1)))
