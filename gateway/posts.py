"""Posts: made once per source message, listed newest first by cursor.

A post is a small hash at `kb:post:<id>` (ids increase, so the id is the sort key and
the cursor). Timelines are sorted sets of ids: everything, per author, per tag, and
the replies to a post. The author is stored by subscriber id, so a renamed texter's
old posts show the new handle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from redis import Redis

from gateway import keys, subscribers, text

# One atomic step: a post made for a message id that already made one returns the
# existing id, so a job that runs twice still makes one post.
# KEYS: seen marker ("" for posts without a source message), post seq, timeline of all
# ARGV: key prefixes (post, user timeline, tag timeline, replies), author id, reply_to,
#       then field/value pairs, then "--", then folded tags.
_CREATE = """
if KEYS[1] ~= '' then
  local seen = redis.call('GET', KEYS[1])
  if seen and seen ~= '0' then return tonumber(seen) end
end
local id = redis.call('INCR', KEYS[2])
local fields = {}
local i = 7
while ARGV[i] ~= '--' do
  fields[#fields + 1] = ARGV[i]
  i = i + 1
end
redis.call('HSET', ARGV[1] .. id, unpack(fields))
redis.call('ZADD', KEYS[3], id, id)
if ARGV[5] ~= '' then redis.call('ZADD', ARGV[2] .. ARGV[5], id, id) end
if ARGV[6] ~= '' then redis.call('ZADD', ARGV[4] .. ARGV[6] .. ':replies', id, id) end
for j = i + 1, #ARGV do redis.call('ZADD', ARGV[3] .. ARGV[j], id, id) end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], id, 'KEEPTTL') end
return id
"""

MAX_PAGE = 100


@dataclass(frozen=True)
class NewPost:
    """What a post is made from."""

    body: str
    source: str  # "sms" or "web"
    author_id: int | None = None  # a subscriber; None for a web reply
    display_name: str = ""  # a web reply's chosen name
    reply_to: int | None = None
    media: Sequence[str] = ()
    message_sid: str = ""  # the inbound SMS it came from, for exactly-once
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Post:
    id: int
    handle: str
    body: str
    created_at: datetime
    tags: list[str]
    mentions: list[str]
    reply_to: int | None
    source: str
    media: list[str]
    author_id: int | None
    hidden: bool = False

    def to_json(self) -> dict[str, object]:
        """The public JSON shape (DESIGN.md): never a phone number."""
        return {
            "id": self.id,
            "handle": self.handle,
            "body": self.body,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "tags": self.tags,
            "mentions": self.mentions,
            "reply_to": self.reply_to,
            "source": self.source,
            "media": self.media,
        }


def _create_args(new: NewPost) -> tuple[list[str], list[str]]:
    post_tags = text.tags(new.body)
    fields = {
        "body": new.body,
        "src": new.source,
        "at": f"{new.created_at:.3f}",
    }
    if new.author_id is not None:
        fields["sub"] = str(new.author_id)
    if new.display_name:
        fields["name"] = new.display_name
    if new.reply_to is not None:
        fields["re"] = str(new.reply_to)
    if new.media:
        fields["media"] = json.dumps(list(new.media))
    if new.message_sid:
        fields["sid"] = new.message_sid
    flat = [x for pair in fields.items() for x in pair]
    seen = keys.seen_message(new.message_sid) if new.message_sid else ""
    args = [
        keys.post(""),
        keys.timeline_user(""),
        keys.timeline_tag(""),
        keys.post(""),
        "" if new.author_id is None else str(new.author_id),
        "" if new.reply_to is None else str(new.reply_to),
        *flat,
        "--",
        *(text.fold(t) for t in post_tags),
    ]
    return [seen, keys.POST_SEQ, keys.TIMELINE_ALL], args


def create_many(redis: Redis, new_posts: Sequence[NewPost]) -> list[int]:
    """Make posts in one round trip; returns their ids (an existing id for a repeat)."""
    script = redis.register_script(_CREATE)
    pipe = redis.pipeline(transaction=False)
    for new in new_posts:
        script_keys, args = _create_args(new)
        script(keys=script_keys, args=args, client=pipe)
    return [int(x) for x in pipe.execute()]


def create(redis: Redis, new: NewPost) -> int:
    return create_many(redis, [new])[0]


def _from_hash(post_id: int, h: dict[str, str], handles: dict[int, str]) -> Post:
    author = int(h["sub"]) if h.get("sub") else None
    body = h.get("body", "")
    return Post(
        id=post_id,
        handle=handles.get(author, "") if author is not None else h.get("name", ""),
        body=body,
        created_at=datetime.fromtimestamp(float(h.get("at", "0")), tz=UTC),
        tags=text.tags(body),
        mentions=text.mentions(body),
        reply_to=int(h["re"]) if h.get("re") else None,
        source=h.get("src", "sms"),
        media=json.loads(h["media"]) if h.get("media") else [],
        author_id=author,
        hidden=h.get("hidden") == "1",
    )


def get_many(redis: Redis, post_ids: Sequence[int], include_hidden: bool = False) -> list[Post]:
    """Posts by id, in the order given; missing (and, unless asked, hidden) ones left out."""
    pipe = redis.pipeline(transaction=False)
    for post_id in post_ids:
        pipe.hgetall(keys.post(post_id))
    hashes = pipe.execute()
    authors = [int(h["sub"]) for h in hashes if h.get("sub")]
    handles = subscribers.handles_of(redis, authors) if authors else {}
    found = [_from_hash(pid, h, handles) for pid, h in zip(post_ids, hashes, strict=True) if h]
    return [p for p in found if include_hidden or not p.hidden]


def get(redis: Redis, post_id: int) -> Post | None:
    found = get_many(redis, [post_id])
    return found[0] if found else None


def page(redis: Redis, timeline_key: str, before: int | None, limit: int) -> tuple[list[Post], int | None]:
    """Up to `limit` posts of a timeline older than `before`, newest first, and the next cursor."""
    limit = max(1, min(limit, MAX_PAGE))
    top = f"({before}" if before is not None else "+inf"
    found = cast(list[str], redis.zrevrangebyscore(timeline_key, top, "-inf", start=0, num=limit + 1))
    ids = [int(x) for x in found]
    has_more = len(ids) > limit
    ids = ids[:limit]
    posts = get_many(redis, ids)
    return posts, (ids[-1] if has_more and ids else None)


def replies_to(redis: Redis, post_id: int, limit: int = MAX_PAGE) -> list[Post]:
    """A post's replies, oldest first, as a thread reads."""
    ids = [int(x) for x in cast(list[str], redis.zrange(keys.replies(post_id), 0, limit - 1))]
    return get_many(redis, ids)
