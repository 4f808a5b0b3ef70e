"""Helpers that look for phone numbers where none may be."""

from __future__ import annotations

import re

from redis import Redis


def number_forms(number: str) -> list[str]:
    """The ways a number could leak: as given, digits only, and the national tail."""
    digits = re.sub(r"\D", "", number)
    return [number, digits, digits[-9:]]


def redis_dump(redis: Redis) -> str:
    """Every key and every value in the database, as one text (for leak scans)."""
    raw = Redis(connection_pool=redis.connection_pool)
    parts: list[str] = []
    for key in raw.scan_iter(count=1000):
        kind = raw.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        parts.append(str(key))
        if kind == "string":
            parts.append(str(raw.get(key)))
        elif kind == "hash":
            parts.extend(f"{k}={v}" for k, v in raw.hgetall(key).items())
        elif kind == "list":
            parts.extend(map(str, raw.lrange(key, 0, -1)))
        elif kind == "set":
            parts.extend(map(str, raw.smembers(key)))
        elif kind == "zset":
            parts.extend(str(m) for m, _ in raw.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            parts.extend(str(e) for e in raw.xrange(key))
    return "\n".join(parts)


def leaks(text: str, numbers: list[str]) -> list[str]:
    """The forms of `numbers` that appear in `text`."""
    return [form for n in numbers for form in number_forms(n) if form in text]
