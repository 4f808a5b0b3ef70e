"""What a feed request asks for: which timeline, and which page of it.

Shared by the pages, the Atom feeds and the JSON API, so all three agree on what a
handle or tag means and on what counts as a bad cursor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redis import Redis

from gateway.microblog import posts, subscribers, text
from gateway.store import keys

PAGE_SIZE = 20
# ASCII digits only: int() would also take " 7", "7_0" and Persian digits, which a
# cursor we hand out never contains.
_DIGITS = re.compile(r"[0-9]{1,18}")


class BadRequest(ValueError):
    """A query parameter that cannot be used; the message is safe to show."""


@dataclass(frozen=True)
class Timeline:
    """A resolved timeline: its Redis key and how to name it to a reader."""

    key: str
    kind: str  # "all", "handle" or "tag"
    name: str = ""  # the current handle, or the tag as asked for

    @property
    def title(self) -> str:
        if self.kind == "handle":
            return f"@{self.name}"
        if self.kind == "tag":
            return f"#{self.name}"
        return "Latest posts"


def everything() -> Timeline:
    return Timeline(keys.TIMELINE_ALL, "all")


def by_handle(redis: Redis, handle: str) -> Timeline | None:
    """The timeline of the texter with this handle (any case, "@" optional); None if unknown."""
    sub_id = subscribers.id_for_handle(redis, handle)
    if sub_id is None:
        return None
    current = subscribers.handle_of(redis, sub_id) or handle.lstrip("@")
    return Timeline(keys.timeline_user(sub_id), "handle", current)


def by_tag(redis: Redis, tag: str) -> Timeline | None:
    """The timeline of a tag (any case, "#" optional); None if no post ever carried it."""
    tag = tag.lstrip("#＃")
    folded = text.fold(tag)
    if not folded:
        return None
    key = keys.timeline_tag(folded)
    if not redis.exists(key):
        return None
    return Timeline(key, "tag", tag)


# The HTML page of each kind of timeline (its Atom feed's endpoint is "feed.atom_<kind>").
PAGE_ENDPOINTS = {"all": "feed.index", "handle": "feed.handle_page", "tag": "feed.tag_page"}


def named(redis: Redis, kind: str, name: str = "") -> tuple[Timeline | None, dict[str, Any]]:
    """The timeline a URL names ("all", a "handle" or a "tag", None if there is none), and
    the URL parameters that name it in links (a handle as it is now spelled)."""
    if kind == "handle":
        timeline = by_handle(redis, name)
        return timeline, {"handle": timeline.name if timeline else name}
    if kind == "tag":
        return by_tag(redis, name), {"tag": name}
    return everything(), {}


def parse_before(raw: str | None) -> int | None:
    """The `before` cursor: a post id (a non-negative integer), or None when absent."""
    if raw is None or raw == "":
        return None
    if not _DIGITS.fullmatch(raw):
        raise BadRequest("before must be a non-negative integer (a post id)")
    return int(raw)


def parse_limit(raw: str | None, default: int = PAGE_SIZE) -> int:
    """The page size: an integer from 1 to 100, `default` when absent."""
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= posts.MAX_PAGE:
        raise BadRequest(f"limit must be an integer from 1 to {posts.MAX_PAGE}")
    return int(raw)


def parse_post_id(raw: str) -> int | None:
    """A post id from a URL path; None when it cannot name a post."""
    return int(raw) if _DIGITS.fullmatch(raw) else None


def thread(redis: Redis, raw_id: str) -> tuple[posts.Post, list[posts.Post]] | None:
    """A visible post named in a URL path, with its replies oldest first; None if none."""
    pid = parse_post_id(raw_id)
    post = posts.get(redis, pid) if pid is not None else None
    if post is None:
        return None
    return post, posts.replies_to(redis, post.id)
