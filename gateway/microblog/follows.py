"""Who follows whom, and which tags: sets of subscriber ids, kept both ways.

`kb:fans:user:<id>` and `kb:fans:tag:<tag>` answer "who gets this post" in one SUNION;
`kb:fol:<id>:users` and `kb:fol:<id>:tags` answer STATS and let FORGET ME find every
set a subscriber is in. Both sides change in one step, so they never disagree. Tags are
case-folded (`text.fold`), so FOLLOW #Tehran and #tehran are one follow. A follow may be
capped (MAX_FOLLOWS: texters and tags together), checked in the same step as it is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from redis import Redis

from gateway.microblog.text import fold
from gateway.store import keys, scripts

Followed = Literal["followed", "already", "full"]

# KEYS: the follower's set to add to, their other following set, the fans set of what they
# follow.  ARGV: what they follow (an id or a folded tag), the follower's id, the most
# follows they may have (-1: no limit).
_FOLLOW = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'already' end
local limit = tonumber(ARGV[3])
if limit >= 0 and redis.call('SCARD', KEYS[1]) + redis.call('SCARD', KEYS[2]) >= limit then
  return 'full'
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 'followed'
"""


@dataclass(frozen=True)
class Counts:
    followers: int
    following_users: int
    following_tags: int


def _follow(redis: Redis, follower: int, target: str, kind: str, limit: int | None) -> Followed:
    mine, other = keys.following(follower), keys.following_tags(follower)
    if kind == "tag":
        mine, other, fans = other, mine, keys.tag_followers(target)
    else:
        fans = keys.followers(target)
    args: list[str | int] = [target, follower, -1 if limit is None else limit]
    found: Followed = scripts.load(redis, _FOLLOW)(keys=[mine, other, fans], args=args)
    return found


def follow_user(redis: Redis, follower: int, followed: int, limit: int | None = None) -> Followed:
    """Start following a subscriber: "followed", "already" (following), or "full" (the
    follower has `limit` follows already)."""
    return _follow(redis, follower, str(followed), "user", limit)


def unfollow_user(redis: Redis, follower: int, followed: int) -> bool:
    """Stop following a subscriber; False if not following."""
    pipe = redis.pipeline(transaction=True)
    pipe.srem(keys.following(follower), followed)
    pipe.srem(keys.followers(followed), follower)
    return bool(pipe.execute()[0])


def follow_tag(redis: Redis, follower: int, tag: str, limit: int | None = None) -> Followed:
    """Start following a tag (as written or folded), as `follow_user` a subscriber."""
    return _follow(redis, follower, fold(tag), "tag", limit)


def unfollow_tag(redis: Redis, follower: int, tag: str) -> bool:
    """Stop following a tag; False if not following."""
    pipe = redis.pipeline(transaction=True)
    pipe.srem(keys.following_tags(follower), fold(tag))
    pipe.srem(keys.tag_followers(fold(tag)), follower)
    return bool(pipe.execute()[0])


def audience(redis: Redis, author: int | None, tags: Iterable[str]) -> list[int]:
    """Everyone following the author or any of the tags, once each, the author left out, sorted."""
    return audiences(redis, [(author, tags)])[0]


def audiences(redis: Redis, posts: Sequence[tuple[int | None, Iterable[str]] | None]) -> list[list[int]]:
    """`audience` for many (author, tags) pairs at once, in one round trip; None: no one."""
    pipe = redis.pipeline(transaction=False)
    asked = []
    for post in posts:
        author, tags = post if post is not None else (None, ())
        sets = [keys.tag_followers(fold(t)) for t in tags]
        if author is not None:
            sets.append(keys.followers(author))
        if sets:
            pipe.sunion(sets)
        asked.append((author, bool(sets)))
    found = iter(pipe.execute() if len(pipe) else [])
    result = []
    for author, any_sets in asked:
        ids = {int(x) for x in next(found)} if any_sets else set()
        result.append(sorted(ids - {author}))
    return result


def counts(redis: Redis, sub_id: int) -> Counts:
    """Followers, and how many subscribers and tags this one follows, in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.scard(keys.followers(sub_id))
    pipe.scard(keys.following(sub_id))
    pipe.scard(keys.following_tags(sub_id))
    followers, users, tags = pipe.execute()
    return Counts(int(followers), int(users), int(tags))


def forget(redis: Redis, sub_id: int) -> None:
    """Remove a subscriber from every follow, both ways (FORGET ME)."""
    pipe = redis.pipeline(transaction=False)
    pipe.smembers(keys.following(sub_id))
    pipe.smembers(keys.following_tags(sub_id))
    pipe.smembers(keys.followers(sub_id))
    followed, tags, fans = pipe.execute()
    pipe = redis.pipeline(transaction=True)
    for other in followed:
        pipe.srem(keys.followers(other), sub_id)
    for tag in tags:
        pipe.srem(keys.tag_followers(tag), sub_id)
    for fan in fans:
        pipe.srem(keys.following(fan), sub_id)
    pipe.delete(keys.following(sub_id), keys.following_tags(sub_id), keys.followers(sub_id))
    pipe.execute()
