"""Moderation: hide a post from every public page, block a handle from posting.

A hidden post keeps its place and data (field `hidden` = "1" on its hash; restoring
clears it); `posts.get_many` leaves it out of pages, feeds and the API. A blocked
subscriber is a member of one set, checked in batches by the inbox (`blocked_among`):
their texts still arrive and are counted ("blocked"), but make no post. Blocking is
by subscriber id, so a blocked texter who renames themselves stays blocked.

Every action is written to a short log the console shows (operator, action, target).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from redis import Redis
from redis.client import Pipeline

from gateway.microblog import subscribers
from gateway.store import keys, stats

LOG_LENGTH = 200


def _log(redis: Redis, operator: str, action: str, target: str) -> None:
    entry = json.dumps({"at": round(time.time(), 3), "by": operator, "action": action, "target": target})
    pipe = redis.pipeline(transaction=False)
    pipe.lpush(keys.MODERATION_LOG, entry)
    pipe.ltrim(keys.MODERATION_LOG, 0, LOG_LENGTH - 1)
    pipe.execute()


def set_hidden(redis: Redis, post_id: int, hidden: bool, operator: str = "") -> bool:
    """Hide (or restore) a post. False when no such post exists."""
    key = keys.post(post_id)
    if not redis.exists(key):
        return False
    if hidden:
        redis.hset(key, "hidden", "1")
    else:
        redis.hdel(key, "hidden")
    _log(redis, operator, "hide" if hidden else "restore", f"post {post_id}")
    return True


def set_blocked(redis: Redis, handle: str, blocked: bool, operator: str = "") -> int | None:
    """Block (or unblock) the subscriber with `handle`; returns their id, None if no such handle."""
    sub_id = subscribers.id_for_handle(redis, handle)
    if sub_id is None:
        return None
    if blocked:
        redis.sadd(keys.BLOCKED_SUBSCRIBERS, sub_id)
    else:
        redis.srem(keys.BLOCKED_SUBSCRIBERS, sub_id)
    _log(redis, operator, "block" if blocked else "unblock", f"@{handle.lstrip('@')}")
    return sub_id


def blocked_among(redis: Redis, sub_ids: Iterable[int]) -> set[int]:
    """Which of these subscribers are blocked, in one round trip (for a drain batch)."""
    unique = list(dict.fromkeys(sub_ids))
    if not unique:
        return set()
    flags = redis.smismember(keys.BLOCKED_SUBSCRIBERS, unique)
    return {sub_id for sub_id, flag in zip(unique, flags, strict=True) if flag}


def count_blocked(r: Redis | Pipeline, n: int = 1) -> None:
    """Count texts dropped because their sender is blocked (the console shows it)."""
    if n:
        stats.record(r, "blocked", n)


def blocked_handles(redis: Redis, limit: int = 100) -> list[tuple[int, str]]:
    """Blocked subscribers as (id, current handle), at most `limit` of them."""
    ids = sorted(int(x) for x in redis.srandmember(keys.BLOCKED_SUBSCRIBERS, limit) or [])
    handles = subscribers.handles_of(redis, ids) if ids else {}
    return [(sub_id, handles.get(sub_id, "")) for sub_id in ids]


def recent_actions(redis: Redis, limit: int = 20) -> list[dict[str, object]]:
    """The latest moderation actions, newest first."""
    return [json.loads(x) for x in redis.lrange(keys.MODERATION_LOG, 0, limit - 1)]
