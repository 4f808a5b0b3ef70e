"""Lua scripts, built once per Redis client instead of on every call.

`redis.register_script` encodes and SHA-1-hashes the source each time it is called;
on the webhook's hot path that is work repeated for every text. Scripts are kept per
client (a pipeline of that client can still run them with `client=`).
"""

from __future__ import annotations

import weakref

from redis import Redis
from redis.commands.core import Script

_loaded: weakref.WeakKeyDictionary[Redis, dict[str, Script]] = weakref.WeakKeyDictionary()


def load(redis: Redis, source: str) -> Script:
    """The Script for `source` on this client (EVALSHA, falling back to EVAL once)."""
    per_client = _loaded.get(redis)
    if per_client is None:
        per_client = _loaded.setdefault(redis, {})
    found = per_client.get(source)
    if found is None:
        found = per_client[source] = redis.register_script(source)
    return found
