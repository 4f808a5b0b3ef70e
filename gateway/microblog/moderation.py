"""Moderation: hide a post from every public page, block a texter.

A hidden post keeps its place and data (field `hidden` = "1" on its hash; restoring
clears it); `posts.get_many` leaves it out of pages, feeds and the API.

A block is a tombstone keyed by the keyed hash of the texter's number (`keys.BLOCKS`),
never by their subscriber id, so it outlives FORGET ME and catches the number's next
registration; no number is stored. A blocked texter's texts still arrive and are counted
("blocked"), but make no post and no DM, rename or follow (`pipeline.blocks` screens a
batch; `blocked_among` reads a batch's senders in one round trip); they are told once,
neutrally (`tell_once`). Blocking hides the texter's posts too unless the operator says
otherwise: those are marked `hid_by` = "block", so unblocking restores them and no post an
operator hid on its own.

Every action is written to a short log the console shows (operator, action, target).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from redis import Redis
from redis.client import Pipeline

from gateway.microblog import posts, subscribers
from gateway.phones import PhoneVault
from gateway.store import keys, scripts, stats

LOG_LENGTH = 200
HIDE_CHUNK = 1000  # posts per script call when a block hides or restores a texter's posts

# KEYS: the texter's posts.  ARGV: "1" to hide (else restore).
# Hiding leaves alone a post already hidden (by an operator, one by one); restoring
# touches only the posts the block hid.
_HIDE_POSTS = """
for _, key in ipairs(KEYS) do
  if ARGV[1] == '1' then
    if redis.call('EXISTS', key) == 1 and redis.call('HEXISTS', key, 'hidden') == 0 then
      redis.call('HSET', key, 'hidden', '1', 'hid_by', 'block')
    end
  elseif redis.call('HGET', key, 'hid_by') == 'block' then
    redis.call('HDEL', key, 'hidden', 'hid_by')
  end
end
"""
# KEYS: tombstones, told set.  ARGV: lookup key.  1 the first time a blocked number asks.
_TELL_ONCE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
return redis.call('SADD', KEYS[2], ARGV[1])
"""


@dataclass(frozen=True)
class Block:
    """A block as the console lists it: its tombstone's key (a keyed hash, never a number),
    the number's current handle ("" while it has none, after FORGET ME), since when."""

    key: str
    handle: str
    at: float
    hides_posts: bool


def _log(redis: Redis, operator: str, action: str, target: str) -> None:
    entry = json.dumps({"at": round(time.time(), 3), "by": operator, "action": action, "target": target})
    pipe = redis.pipeline(transaction=False)
    pipe.lpush(keys.MODERATION_LOG, entry)
    pipe.ltrim(keys.MODERATION_LOG, 0, LOG_LENGTH - 1)
    pipe.execute()


def set_hidden(redis: Redis, post_id: int, hidden: bool, operator: str = "") -> bool:
    """Hide (or restore) a post. False when no such post exists. A post hidden here stays
    hidden when its author is unblocked."""
    key = keys.post(post_id)
    if not redis.exists(key):
        return False
    pipe = redis.pipeline(transaction=True)
    if hidden:
        pipe.hset(key, "hidden", "1")
        pipe.hdel(key, "hid_by")
    else:
        pipe.hdel(key, "hidden", "hid_by")
    posts.shown_differently(pipe)
    pipe.execute()
    _log(redis, operator, "hide" if hidden else "restore", f"post {post_id}")
    return True


def lookup_key_of(redis: Redis, vault: PhoneVault, handle: str) -> str | None:
    """The keyed hash of the number behind `handle` (what a block is keyed by); None if no
    one has that handle."""
    sub_id = subscribers.id_for_handle(redis, handle)
    encrypted = redis.hget(keys.subscriber(sub_id), "phone") if sub_id is not None else None
    return vault.lookup_key(vault.decrypt(str(encrypted))) if encrypted else None


def _hide_posts(redis: Redis, lookup_key: str, hide: bool) -> None:
    """Hide (or restore) the posts of whoever has this number now."""
    [sub_id] = subscribers.find_ids(redis, [lookup_key])
    if sub_id is None:
        return
    # The script names each post it touches, so their ids are read first: one more round
    # trip for an operator's action. (The tombstone is already written, so the texter's
    # next texts are held, not posted: see `pipeline/blocks.py`.)
    post_ids = cast(list[str], redis.zrange(keys.timeline_user(sub_id), 0, -1))
    script, pipe = scripts.load(redis, _HIDE_POSTS), redis.pipeline(transaction=False)
    for start in range(0, len(post_ids), HIDE_CHUNK):
        chunk = post_ids[start : start + HIDE_CHUNK]
        script(keys=[keys.post(i) for i in chunk], args=[int(hide)], client=pipe)
    posts.shown_differently(pipe)  # after the scripts, in the same round trip
    pipe.execute()


def block(
    redis: Redis, lookup_key: str, hide_posts: bool = True, operator: str = "", target: str = ""
) -> None:
    """Block the number with this keyed hash, hiding its texter's posts unless told not to
    (blocking again with the other choice hides or restores them)."""
    tombstone = json.dumps({"at": round(time.time(), 3), "hide": hide_posts})
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.BLOCKS, lookup_key, tombstone)
    pipe.srem(keys.BLOCKS_TOLD, lookup_key)
    pipe.execute()
    _hide_posts(redis, lookup_key, hide_posts)
    _log(redis, operator, "block" if hide_posts else "block (posts left up)", target)


def unblock(redis: Redis, lookup_key: str, operator: str = "", target: str = "") -> bool:
    """Lift a block: the tombstone goes, and the posts the block hid come back. False when
    the number was not blocked."""
    pipe = redis.pipeline(transaction=True)
    pipe.hdel(keys.BLOCKS, lookup_key)
    pipe.srem(keys.BLOCKS_TOLD, lookup_key)
    removed = int(pipe.execute()[0])
    if not removed:
        return False
    _hide_posts(redis, lookup_key, False)
    _log(redis, operator, "unblock", target)
    return True


def blocked_among(redis: Redis, lookup_keys: Iterable[str]) -> set[str]:
    """Which of these numbers (keyed hashes) are blocked, in one round trip (for a drain batch)."""
    unique = list(dict.fromkeys(lookup_keys))
    if not unique:
        return set()
    found = redis.hmget(keys.BLOCKS, unique)
    return {key for key, tombstone in zip(unique, found, strict=True) if tombstone}


def tell_once(redis: Redis, lookup_key: str) -> bool:
    """Whether this blocked number is yet to get its one neutral SMS (and from now on, has)."""
    return bool(scripts.load(redis, _TELL_ONCE)(keys=[keys.BLOCKS, keys.BLOCKS_TOLD], args=[lookup_key]))


def count_blocked(r: Redis | Pipeline, n: int = 1) -> None:
    """Count texts dropped because their sender is blocked (the console shows it)."""
    if n:
        stats.record(r, "blocked", n)


def blocks(redis: Redis, limit: int = 100) -> list[Block]:
    """Blocks, at most `limit` of them, oldest first, with each number's current handle."""
    found = list(itertools.islice(redis.hscan_iter(keys.BLOCKS, count=limit), limit))
    ids = subscribers.find_ids(redis, [k for k, _ in found])
    handles = subscribers.handles_of(redis, [i for i in ids if i is not None])
    listed = []
    for (key, tombstone), sub_id in zip(found, ids, strict=True):
        data = json.loads(tombstone)
        handle = handles.get(sub_id, "") if sub_id is not None else ""
        listed.append(Block(key, handle, float(data["at"]), bool(data["hide"])))
    return sorted(listed, key=lambda b: b.at)


def recent_actions(redis: Redis, limit: int = 20) -> list[dict[str, object]]:
    """The latest moderation actions, newest first."""
    return [json.loads(x) for x in redis.lrange(keys.MODERATION_LOG, 0, limit - 1)]
