"""Renderings of feed pages kept in memory, keyed by the data they were made from.

A key holds everything a rendering depends on (the rows Redis returned for the page,
their current handles, the cursor, the request's parameters), so a hit is always what
rendering afresh would give: a hidden post or a renamed texter changes the rows, hence
the key. What a hit saves is the Python work (building posts, JSON, templates, the ETag),
never the read from Redis. Each web process keeps its own small cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from flask import Response
from werkzeug.http import generate_etag

# Readers crowd the newest pages; a few hundred renderings of up to ~20 KB is little
# memory, and clearing when full is simpler (and safe across threads) than an LRU.
MAX_ENTRIES = 256

_entries: dict[Hashable, tuple[bytes, str]] = {}
_lock = threading.Lock()


def response(key: Hashable, make: Callable[[], str | bytes], content_type: str) -> Response:
    """A 200 response with the rendering for `key` (made by `make` on a miss) and its ETag."""
    found = _entries.get(key)
    if found is None:
        made = make()
        body = made.encode() if isinstance(made, str) else made
        found = (body, generate_etag(body))
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[key] = found
    body, etag = found
    result = Response(body, content_type=content_type)
    result.set_etag(etag)  # the blueprint's add_etag keeps it rather than hashing again
    return result


def clear() -> None:
    """Forget every rendering (tests; a template change)."""
    with _lock:
        _entries.clear()
