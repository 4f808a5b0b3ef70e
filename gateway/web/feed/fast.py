"""The newest page of everything (`/` and `/api/v1/posts`), answered from memory while it is current.

These two are what a crowd reloads. Read the usual way, each costs Flask's request
machinery and two round trips to Redis (the page's ids, then its posts) before the
rendering cache (`cache.py`) can answer. Here, in front of Flask, one round trip asks
whether anything they show can have changed: the timeline's size and newest id (a new
post changes them, wherever it lands) and the feed's generation, a random token that
every change to a post already listed replaces, after it or atomically with it
(`posts.shown_differently`: hidden, restored, erased, its author renamed or forgotten;
random, so a change lost in a failover cannot come back under the token it had). While
all three are what they were when the page was last made here, the same response
(status, headers, body) is sent again; otherwise Flask makes it and it is kept.

Only a plain GET is answered here: a query string, a conditional request (If-None-Match
…) or any other path goes to Flask, as does everything when Redis fails. A response is
kept only if it could be sent to anyone: a 200 that sets no cookie and does not vary by
one. Each web process keeps its own few responses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from gateway.store import keys
from gateway.web.feed.blueprint import CONDITIONAL_HEADERS

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PATHS = frozenset({"/", "/api/v1/posts"})
MAX_ENTRIES = 32  # a key per path and generation: a few are current at any time


@dataclass(frozen=True)
class _Kept:
    status: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _shareable(status: str, headers: list[tuple[str, str]]) -> bool:
    """A 200 anyone may be sent: it sets no cookie and does not depend on one."""
    if not status.startswith("200"):
        return False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "set-cookie" or (lowered == "vary" and "cookie" in value.lower()):
            return False
    return True


class FastFeed:
    """WSGI middleware: answers a current newest page from memory, passes everything else on."""

    def __init__(self, app: WSGIApp, redis: Redis):
        self._app = app
        self._redis = redis
        self._kept: dict[tuple[object, ...], _Kept] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (
            path not in PATHS
            or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or any(name in environ for name in CONDITIONAL_HEADERS)
        ):
            return self._app(environ, start_response)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(keys.TIMELINE_ALL)
            pipe.zrevrange(keys.TIMELINE_ALL, 0, 0)
            pipe.get(keys.FEED_GENERATION)
            size, newest, generation = pipe.execute()
        except RedisError:
            return self._app(environ, start_response)  # Flask answers, or says what is wrong
        # The page's links are relative: they depend on where the app is mounted (set by the
        # server), never on the Host a reader sends, which must not be a way to fill the
        # cache with renderings and evict the current one.
        key = (path, environ.get("SCRIPT_NAME", ""), size, tuple(newest), generation)
        kept = self._kept.get(key)
        if kept is not None:
            start_response(kept.status, list(kept.headers))
            return [kept.body]
        return self._make(key, environ, start_response)

    def _make(
        self, key: tuple[object, ...], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Flask's response, kept for `key` when anyone may be sent it."""
        answered: list[tuple[str, list[tuple[str, str]]]] = []

        def noting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append((status, list(headers)))
            return start_response(status, headers, exc_info)

        chunks = self._app(environ, noting)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if answered and _shareable(*answered[-1]):
            status, headers = answered[-1]
            with self._lock:
                if len(self._kept) >= MAX_ENTRIES:
                    self._kept.clear()
                self._kept[key] = _Kept(status, tuple(headers), body)
        return [body]
