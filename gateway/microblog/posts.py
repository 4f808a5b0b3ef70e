"""Posts: made once per source message, listed newest first by cursor.

A post is a small hash at `kb:post:<id>` (ids increase, so the id is the sort key and
the cursor). Timelines are sorted sets of ids: everything, per author, per tag, and
the replies to a post. The author is stored by subscriber id, so a renamed texter's
old posts show the new handle. A web reply has no author: it carries the display name
its writer chose, which is never a handle (`Post.byline`).

Bodies are stored and read with their direction controls balanced (`text.balance_bidi`),
display names without invisible characters or "@" (`text.display_name`), media as
allowed URLs only (`media.py`): on the way in, and again on the way out for posts
stored before those rules.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from redis import Redis
from redis.exceptions import ResponseError

from gateway.microblog import media as media_urls
from gateway.microblog import text
from gateway.store import keys, scripts
from gateway.store.replicated import NONE, Replication

# One atomic step: a post made for a message id that already made one returns the
# existing id, so a job that runs twice still makes one post.
# KEYS: seen marker ("" for posts without a source message), the post's hash, then every
# timeline it joins (all, its author's, the replies to the post it answers, its tags').
# ARGV: its id (taken beforehand from the post seq, as the post's own key must be named in
# KEYS), then field/value pairs.
_CREATE = """
if KEYS[1] ~= '' then
  local seen = redis.call('GET', KEYS[1])
  if seen and seen ~= '0' then return tonumber(seen) end
end
local id = ARGV[1]
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
for j = 3, #KEYS do redis.call('ZADD', KEYS[j], id, id) end
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], id, 'KEEPTTL') end
return tonumber(id)
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
    handle: str  # the texter's current handle; "" for a web reply
    body: str
    created_at: datetime
    tags: list[str]
    mentions: list[str]
    reply_to: int | None
    source: str
    media: list[str]
    author_id: int | None
    hidden: bool = False
    display_name: str = ""  # a web reply's chosen name; "" for a texter's post

    @property
    def from_web(self) -> bool:
        return self.source == "web"

    @property
    def byline(self) -> str:
        """Who wrote it, as every rendering names them: "@handle" for a texter, "Name (web)"
        for a web reply (no "@": anyone can type any name on the web, so it must never
        read as a texter), "anonymous" when there is neither."""
        if self.from_web:
            return f"{self.display_name or 'anonymous'} (web)"
        return f"@{self.handle}" if self.handle else "anonymous"

    def to_json(self, media_allow_http: bool = False) -> dict[str, object]:
        """The public JSON shape (the README's HTTP API): never a phone number. A texter's
        post names them by `handle`; a web reply by `display_name`, and has no handle."""
        author = {"display_name": self.display_name} if self.from_web else {"handle": self.handle}
        return {
            "id": self.id,
            **author,
            "body": self.body,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "tags": self.tags,
            "mentions": self.mentions,
            "reply_to": self.reply_to,
            "source": self.source,
            "media": media_urls.kept(self.media, media_allow_http),
        }


def _create_args(new: NewPost, post_id: int, media_allow_http: bool) -> tuple[list[str], list[str]]:
    body = text.balance_bidi(new.body)
    post_tags = text.tags(body)
    display_name = text.display_name(new.display_name)
    post_media = media_urls.kept(new.media, media_allow_http)
    fields = {
        "body": body,
        "src": new.source,
        "at": f"{new.created_at:.3f}",
    }
    if new.author_id is not None:
        fields["sub"] = str(new.author_id)
    if display_name:
        fields["name"] = display_name
    if new.reply_to is not None:
        fields["re"] = str(new.reply_to)
    if post_media:
        fields["media"] = json.dumps(post_media)
    if new.message_sid:
        fields["sid"] = new.message_sid
    script_keys = [keys.seen_message(new.message_sid) if new.message_sid else "", keys.post(post_id)]
    script_keys.append(keys.TIMELINE_ALL)
    if new.author_id is not None:
        script_keys.append(keys.timeline_user(new.author_id))
    if new.reply_to is not None:
        script_keys.append(keys.replies(new.reply_to))
    script_keys += [keys.timeline_tag(text.fold(t)) for t in post_tags]
    return script_keys, [str(post_id), *(x for pair in fields.items() for x in pair)]


def create_many(
    redis: Redis,
    new_posts: Sequence[NewPost],
    media_allow_http: bool = False,
    replication: Replication = NONE,
) -> list[int]:
    """Make posts in two round trips (their ids, then the posts); returns their ids (an
    existing id for a repeat, whose reserved id is then never used). Media URLs are kept
    only if allowed (https, or http too with `media_allow_http`). Raises NotReplicated
    unless `replication`'s replicas confirmed them: a post lost in a failover with its
    message id's record would be made again, and fanned out twice."""
    if not new_posts:
        return []
    first = int(redis.incrby(keys.POST_SEQ, len(new_posts))) - len(new_posts) + 1
    script = scripts.load(redis, _CREATE)
    pipe = redis.pipeline(transaction=False)
    for post_id, new in enumerate(new_posts, start=first):
        script_keys, args = _create_args(new, post_id, media_allow_http)
        script(keys=script_keys, args=args, client=pipe)
    return [int(x) for x in replication.execute(pipe)]


def shown_differently(pipe: Redis) -> None:
    """Note that posts already listed now show differently (hidden, restored, erased, their
    author renamed or forgotten), after the change or atomically with it (in its MULTI):
    renderings of the newest pages cached by generation are then stale (web/feed/fast.py)."""
    pipe.set(keys.FEED_GENERATION, new_generation())


def new_generation() -> str:
    """A feed generation: random, not counted, so one lost in a failover is never reused
    for what the promoted replica shows."""
    return secrets.token_hex(8)


def create(redis: Redis, new: NewPost, media_allow_http: bool = False) -> int:
    return create_many(redis, [new], media_allow_http)[0]


# Reading: a batch of posts is one round trip, the post hashes and their authors' current
# handles together; a page is two (its ids from the timeline, then that batch). Every key
# the script reads is in its KEYS (the handles come from one index hash, keys.HANDLE_OF),
# so it stays valid however Redis is replicated. A row is what a post's rendering depends
# on, in _FIELDS order after the id, then the handle: equal rows render equally, so a
# reader can cache by them. KEYS: the handle-of index, then the posts' hashes.
# ARGV: "1" to keep hidden ones, the post key prefix (a post's id is the rest of its key).
_FIELDS = ("body", "src", "at", "sub", "name", "re", "media", "hidden")
POST_KEY_PREFIX = keys.post("")
_GET = f"""
local FIELDS = {{{", ".join(repr(f) for f in _FIELDS)}}}
local out = {{}}
for i = 2, #KEYS do
  local h = redis.call('HMGET', KEYS[i], unpack(FIELDS))
  if (h[1] or h[2] or h[3]) and (ARGV[1] == '1' or h[8] ~= '1') then
    out[#out + 1] = string.sub(KEYS[i], #ARGV[2] + 1)
    for j = 1, #FIELDS do out[#out + 1] = h[j] end
    out[#out + 1] = h[4] and redis.call('HGET', KEYS[1], h[4])
  end
end
return out
"""
# An author whose handle is not in keys.HANDLE_OF yet (registered before the index): it is
# copied there from their hash, atomically so a rename cannot slip between.
# KEYS: the subscriber's hash, the handle-of index. ARGV: their id.
_INDEX_HANDLE = """
local handle = redis.call('HGET', KEYS[1], 'handle')
if handle then redis.call('HSET', KEYS[2], ARGV[1], handle) end
return handle
"""
# The most ids one page read looks at: five full pages' worth.
PAGE_SCAN_IDS = 5 * MAX_PAGE
_ROW = len(_FIELDS) + 2
Row = tuple[str | None, ...]


@functools.lru_cache(maxsize=8192)
def _readied(body: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A stored body balanced for showing, with its tags and mentions: a post's text
    never changes, so each is worked out once."""
    body = text.balance_bidi(body)  # a no-op for posts stored since bodies are balanced
    return body, tuple(text.tags(body)), tuple(text.mentions(body))


def _media(stored: str | None) -> list[str]:
    try:
        found = json.loads(stored) if stored else []
    except ValueError:
        return []
    return [url for url in found if isinstance(url, str)] if isinstance(found, list) else []


def _from_row(row: Row) -> Post:
    post_id, stored_body, src, at, sub, name, reply_to, media, hidden, handle = row
    source = src or "sms"
    body, found_tags, found_mentions = _readied(stored_body or "")
    return Post(
        id=int(post_id or 0),
        handle="" if source == "web" else handle or "",
        body=body,
        created_at=datetime.fromtimestamp(float(at or "0"), tz=UTC),
        tags=list(found_tags),
        mentions=list(found_mentions),
        reply_to=int(reply_to) if reply_to else None,
        source=source,
        media=_media(media),
        author_id=int(sub) if sub else None,
        hidden=hidden == "1",
        display_name=text.display_name(name or "") if source == "web" else "",
    )


def _rows(flat: list[str | None]) -> tuple[Row, ...]:
    return tuple(tuple(flat[i : i + _ROW]) for i in range(0, len(flat), _ROW))


@dataclass(frozen=True)
class Page:
    """A page of a timeline as stored: `rows` (hashable, so equal pages can share one
    rendering) and `next`, the cursor of the page after it (None on the last)."""

    rows: tuple[Row, ...]
    next: int | None

    def posts(self) -> list[Post]:
        return [_from_row(row) for row in self.rows]


def _read_rows(redis: Redis, post_ids: Sequence[int | str], include_hidden: bool) -> list[Row]:
    """The rows of the posts that exist and may be shown, in the order given: one round trip
    (two more for each author not yet in the handle-of index)."""
    if not post_ids:
        return []
    script_keys = [keys.HANDLE_OF, *(POST_KEY_PREFIX + str(i) for i in post_ids)]
    args = ["1" if include_hidden else "0", POST_KEY_PREFIX]
    got = scripts.load(redis, _GET)(keys=script_keys, args=args)
    rows = list(_rows(cast(list[str | None], got)))
    return [_with_handle(redis, row) if row[4] and row[-1] is None else row for row in rows]


def _with_handle(redis: Redis, row: Row) -> Row:
    sub = str(row[4])
    try:
        handle = scripts.load(redis, _INDEX_HANDLE)(keys=[keys.subscriber(sub), keys.HANDLE_OF], args=[sub])
    except ResponseError:  # a Redis taking no writes now (a replica, NOREPLICAS): read, index later
        handle = redis.hget(keys.subscriber(sub), "handle")
    return (*row[:-1], handle)


def get_many(redis: Redis, post_ids: Sequence[int], include_hidden: bool = False) -> list[Post]:
    """Posts by id, in the order given; missing (and, unless asked, hidden) ones left out."""
    return [_from_row(row) for row in _read_rows(redis, post_ids, include_hidden)]


def get(redis: Redis, post_id: int) -> Post | None:
    found = get_many(redis, [post_id])
    return found[0] if found else None


def read_page(redis: Redis, timeline_key: str, before: int | None, limit: int) -> Page:
    """Up to `limit` visible posts of a timeline older than `before`, newest first: two round
    trips. The page is full unless the timeline ends (then `next` is None) or PAGE_SCAN_IDS
    hidden posts in a row were passed over (then `next` carries on after them)."""
    limit = max(1, min(limit, MAX_PAGE))
    top = f"({before}" if before is not None else "+inf"
    rows: list[Row] = []
    looked = 0
    while looked < PAGE_SCAN_IDS:
        # One more than the page needs at first (the common case: nothing hidden), then more
        # at a time as hidden posts turn up.
        want = min(PAGE_SCAN_IDS - looked, max(limit - len(rows) + 1, looked))
        ids = cast(list[str], redis.zrevrangebyscore(timeline_key, top, "-inf", start=0, num=want))
        rows += _read_rows(redis, ids, include_hidden=False)
        if len(rows) > limit:  # a shown post follows the page: the page ends at the last shown
            return Page(tuple(rows[:limit]), int(str(rows[limit - 1][0])))
        looked += len(ids)
        if len(ids) < want:
            return Page(tuple(rows), None)
        top = f"({ids[-1]}"
    return Page(tuple(rows), int(top[1:]))  # the look ran out: carry on after the last id looked at


def page(redis: Redis, timeline_key: str, before: int | None, limit: int) -> tuple[list[Post], int | None]:
    """Up to `limit` posts of a timeline older than `before`, newest first, and the next cursor."""
    found = read_page(redis, timeline_key, before, limit)
    return found.posts(), found.next


def replies_to(redis: Redis, post_id: int, limit: int = MAX_PAGE) -> list[Post]:
    """A post's replies, oldest first, as a thread reads."""
    ids = [int(x) for x in cast(list[str], redis.zrange(keys.replies(post_id), 0, limit - 1))]
    return get_many(redis, ids)
