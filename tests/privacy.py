"""Helpers that look for phone numbers where none may be."""

from __future__ import annotations

import re
import zlib
from typing import Any

from redis import Redis


def number_forms(number: str) -> list[str]:
    """The ways a number could leak: as given, digits only, and the national tail."""
    digits = re.sub(r"\D", "", number)
    return [number, digits, digits[-9:]]


def redis_dump_url(redis_url: str) -> str:
    """Every key and value in Redis as text; compressed values (RQ's job data) unpacked too."""
    raw: Any = Redis.from_url(redis_url)  # bytes in, bytes out (redis-py types both ways)
    parts: list[bytes] = []
    for key in raw.scan_iter(count=1000):
        kind = raw.type(key).decode()
        values: list[Any] = [key]
        if kind == "string":
            values.append(raw.get(key) or b"")
        elif kind == "hash":
            values += [x for kv in raw.hgetall(key).items() for x in kv]
        elif kind == "list":
            values += raw.lrange(key, 0, -1)
        elif kind == "set":
            values += list(raw.smembers(key))
        elif kind == "zset":
            values += [m for m, _ in raw.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values += [str(entry).encode() for entry in raw.xrange(key)]
        for value in values:
            value = value if isinstance(value, bytes) else str(value).encode()
            parts.append(value)
            try:
                parts.append(zlib.decompress(value))
            except zlib.error:
                pass
    return "\n".join(p.decode(errors="replace") + repr(p) for p in parts)


def redis_dump(redis: Redis) -> str:
    """`redis_dump_url` for the database a client is connected to."""
    kwargs = redis.connection_pool.connection_kwargs
    return redis_dump_url(f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}")


def leaks(text: str, numbers: list[str]) -> list[str]:
    """The forms of `numbers` that appear in `text`."""
    return [form for n in numbers for form in number_forms(n) if form in text]
