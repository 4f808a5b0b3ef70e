"""Who follows whom, and which tags: sets of subscriber ids, kept both ways.

`kb:fans:user:<id>` and `kb:fans:tag:<tag>` answer "who gets this post" in one SUNION;
`kb:fol:<id>:users` and `kb:fol:<id>:tags` answer STATS and let FORGET ME find every
set a subscriber is in. Both sides change in one MULTI, so they never disagree. Tags are
case-folded (`text.fold`), so FOLLOW #Tehran and #tehran are one follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis import Redis

from gateway.microblog.text import fold
from gateway.store import keys


@dataclass(frozen=True)
class Counts:
    followers: int
    following_users: int
    following_tags: int


def follow_user(redis: Redis, follower: int, followed: int) -> bool:
    """Start following a subscriber; False if already following."""
    pipe = redis.pipeline(transaction=True)
    pipe.sadd(keys.following(follower), followed)
    pipe.sadd(keys.followers(followed), follower)
    return bool(pipe.execute()[0])


def unfollow_user(redis: Redis, follower: int, followed: int) -> bool:
    """Stop following a subscriber; False if not following."""
    pipe = redis.pipeline(transaction=True)
    pipe.srem(keys.following(follower), followed)
    pipe.srem(keys.followers(followed), follower)
    return bool(pipe.execute()[0])


def follow_tag(redis: Redis, follower: int, tag: str) -> bool:
    """Start following a tag (as written or folded); False if already following."""
    pipe = redis.pipeline(transaction=True)
    pipe.sadd(keys.following_tags(follower), fold(tag))
    pipe.sadd(keys.tag_followers(fold(tag)), follower)
    return bool(pipe.execute()[0])


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
