"""A texter's own account: handle, bio, latest post, DELETE and FORGET ME.

DELETE and FORGET ME remove posts for good (hash and every timeline), rather than
hiding them: a texter asking to take words down may be in danger, and a hidden copy is
still a copy. Hiding is for moderators (the `hidden` field that `posts.get_many` skips).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis

from gateway.microblog import follows, handles, posts, text
from gateway.microblog.text import fold
from gateway.store import history, keys, scripts

DONE_TTL_SECONDS = 7 * 24 * 3600  # as long as a text can come back (pipeline/intake.py's SEEN_TTL_SECONDS)
BIO_MAX = 160

# KEYS: handle index, subscriber, old handle's hold, new handle's hold, the texter's holds,
# handle-of index, the feed's generation (their posts show the new handle), then each hold
# key listed there.  ARGV: id, old key, new key, new as typed, hold seconds,
# the most holds one texter may have, a new feed generation.
# A handle held for someone else (freed by NAME or FORGET ME lately) is taken; the old one
# is held for this texter, who may take it back.
_RENAME = """
local cur = redis.call('HGET', KEYS[2], 'handle')
if not cur then return 'gone' end
local owner = redis.call('HGET', KEYS[1], ARGV[3])
if owner and owner ~= ARGV[1] then return 'taken' end
local held = redis.call('GET', KEYS[4])
if held and held ~= ARGV[1] then return 'taken' end
if cur == ARGV[4] then return 'same' end
local holding = 0
for i = 8, #KEYS do  -- the holds this texter's renames made, as read just before
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    holding = holding + 1
  else
    redis.call('SREM', KEYS[5], KEYS[i])  -- expired, or taken back
  end
end
if holding >= tonumber(ARGV[6]) and held ~= ARGV[1] then return 'too_often' end
if ARGV[2] ~= ARGV[3] and redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[5])
  redis.call('SADD', KEYS[5], KEYS[3])
  redis.call('EXPIRE', KEYS[5], ARGV[5])
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], 'handle', ARGV[4])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[4])
redis.call('SET', KEYS[7], ARGV[7])
return 'renamed'
"""


def rename(redis: Redis, sub_id: int, new_handle: str) -> str:
    """NAME: "renamed", "same", "taken", "too_often", "invalid" or "gone". A handle that looks
    like one in use or held counts as taken (`handles.key`); the old one is held for
    HOLD_SECONDS, and one texter holds at most MAX_HELD ("too_often" then, unless they take
    back one they hold)."""
    new_handle = handles.clean(new_handle)
    if not handles.is_valid(new_handle):
        return "invalid"
    old = str(redis.hget(keys.subscriber(sub_id), "handle") or "")
    script = scripts.load(redis, _RENAME)
    holds = [handles.hold_key(old), handles.hold_key(new_handle)]
    holding = sorted(str(k) for k in redis.smembers(keys.handles_held_for(sub_id)))  # named in KEYS
    result: str = script(
        keys=[
            keys.HANDLE_INDEX,
            keys.subscriber(sub_id),
            *holds,
            keys.handles_held_for(sub_id),
            keys.HANDLE_OF,
            keys.FEED_GENERATION,
            *holding,
        ],
        args=[
            sub_id,
            handles.key(old),
            handles.key(new_handle),
            new_handle,
            handles.HOLD_SECONDS,
            handles.MAX_HELD,
            posts.new_generation(),
        ],
    )
    return result


def set_bio(redis: Redis, sub_id: int, bio: str) -> str:
    """BIO: store a short bio (cut to BIO_MAX characters); returns what was stored."""
    bio = " ".join(bio.split())[:BIO_MAX]
    redis.hset(keys.subscriber(sub_id), "bio", bio)
    return bio


def latest_post(redis: Redis, sub_id: int) -> posts.Post | None:
    """A subscriber's newest visible post."""
    ids = [int(str(x)) for x in redis.zrevrange(keys.timeline_user(sub_id), 0, 9)]
    found = posts.get_many(redis, ids)
    return found[0] if found else None


def post_count(redis: Redis, sub_id: int) -> int:
    return int(redis.zcard(keys.timeline_user(sub_id)))


def _unpublish(redis: Redis, post_ids: Sequence[int], extra: Sequence[tuple[str, str]] = ()) -> None:
    """Remove posts everywhere they are listed and erase them, in one MULTI."""
    pipe = redis.pipeline(transaction=False)
    for post_id in post_ids:
        pipe.hmget(keys.post(post_id), "body", "sub", "re")
    found = pipe.execute()
    pipe = redis.pipeline(transaction=True)
    for post_id, (body, sub, reply_to) in zip(post_ids, found, strict=True):
        pipe.zrem(keys.TIMELINE_ALL, post_id)
        if sub:
            pipe.zrem(keys.timeline_user(sub), post_id)
        if reply_to:
            pipe.zrem(keys.replies(reply_to), post_id)
        for tag in text.every_tag(body or ""):  # a post made before the caps may have more
            pipe.zrem(keys.timeline_tag(fold(tag)), post_id)
        pipe.delete(keys.post(post_id), keys.replies(post_id))
    for key, value in extra:
        pipe.set(key, value, ex=DONE_TTL_SECONDS)
    posts.shown_differently(pipe)
    pipe.execute()


def delete_latest(redis: Redis, sub_id: int, message_sid: str) -> posts.Post | None | bool:
    """DELETE: erase the newest post. The post; None if there was none; True if this
    text already deleted one (a drain that runs twice must not delete two)."""
    done = keys.command_done(message_sid)
    if redis.exists(done):
        return True
    latest = latest_post(redis, sub_id)
    if latest is None:
        return None
    sid = str(redis.hget(keys.post(latest.id), "sid") or "")
    _unpublish(redis, [latest.id], extra=[(done, str(latest.id))])
    history.erase_post(redis, sid, latest.id)
    return latest


def _release_holds(redis: Redis, sub_id: int) -> None:
    """The handles a forgotten texter freed by NAME stay held, but for no one: no record of
    theirs may name them."""
    mine = keys.handles_held_for(sub_id)
    held = [str(k) for k in redis.smembers(mine)]
    owners = redis.mget(held) if held else []
    pipe = redis.pipeline(transaction=False)
    for key, owner in zip(held, owners, strict=True):
        if owner == str(sub_id):
            pipe.set(key, "", keepttl=True)
    pipe.delete(mine)
    pipe.execute()


def forget(redis: Redis, sub_id: int, lookup_key: str) -> tuple[list[int], str]:
    """FORGET ME, confirmed: erase the subscriber, their number, handle, bio, follows, posts
    and the count of their direct messages, but not a block on their number (`moderation`:
    it is no escape), and their handle stays unavailable to others for a while
    (`handles.HOLD_SECONDS`). (What the pipeline and the outbox still hold of them, they
    forget themselves: `pipeline.forget`, `outbox.forget`.)

    SMS queued to them are never sent from here on: the sender finds no number to send
    to. Returns the erased post ids and the old handle, for `outbox.forget` (a slower
    scan, run as a job).
    """
    handle = str(redis.hget(keys.subscriber(sub_id), "handle") or "")
    post_ids = [int(str(x)) for x in redis.zrange(keys.timeline_user(sub_id), 0, -1)]
    _unpublish(redis, post_ids)
    follows.forget(redis, sub_id)
    pipe = redis.pipeline(transaction=True)
    if handle and redis.hget(keys.HANDLE_INDEX, handles.key(handle)) == str(sub_id):
        pipe.hdel(keys.HANDLE_INDEX, handles.key(handle))
        pipe.set(handles.hold_key(handle), "", ex=handles.HOLD_SECONDS)  # held for no one
    if redis.hget(keys.PHONE_INDEX, lookup_key) == str(sub_id):
        pipe.hdel(keys.PHONE_INDEX, lookup_key)
    pipe.delete(keys.subscriber(sub_id), keys.timeline_user(sub_id))
    pipe.hdel(keys.HANDLE_OF, sub_id)
    posts.shown_differently(pipe)  # their replies' parents may name them no more
    pipe.delete(keys.confirmation(sub_id), keys.dm_rate(sub_id))
    pipe.execute()
    _release_holds(redis, sub_id)
    return post_ids, handle
