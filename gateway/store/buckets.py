"""A week of per-minute buckets for the console's charts, in bounded memory.

Each series (texts in, SMS out through a provider, a latency bucket, a queue's depth...)
keeps one Redis string per UTC day: 1,440 minutes × 4 bytes, an unsigned 32-bit value per
minute at offset 4 × (minute of the day), written with BITFIELD and read with GETRANGE.
A day's string is created at its full size (5,760 zero bytes) the first time anything is
written to it, so it never grows and its memory is fixed: Redis' own allocation for
growing strings could otherwise double it. A day is kept until a week after it ends
(KEPT_DAYS strings per series at most: a week back from any minute spans 8 days); a
series with nothing to record on a day has no string that day.

So the memory is at most BYTES_PER_SERIES_DAY × KEPT_DAYS per series, whatever the
traffic (tests/test_charts.py measures it with MEMORY USAGE; README: "Charts").
Writers are the rollup (store/rollup.py), once a minute; readers the charts (ops/charts.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import cast

from redis import Redis
from redis.client import Pipeline

from gateway.store import keys

MINUTES_PER_DAY = 1440
WIDTH = 4  # bytes a minute: an unsigned 32-bit value (BITFIELD u32, big-endian)
DAY_BYTES = MINUTES_PER_DAY * WIDTH
LARGEST = 2**32 - 1  # a value past it is kept as this (counts per minute stay far below)
KEPT_DAYS = 8
# What Redis reports (MEMORY USAGE) for one day's string: 5,760 bytes of data plus the key,
# the object and allocator rounding. Measured 5,832-5,848 on Redis 6.2 (libc malloc); the slack
# covers other allocators' size classes (jemalloc rounds 5,760 up to 6,144).
BYTES_PER_SERIES_DAY = 6_400
_EMPTY_DAY = bytes(DAY_BYTES)


def day_and_slot(minute: int) -> tuple[int, int]:
    """The UTC day a minute (unix time // 60) falls in, and its place in that day."""
    return divmod(minute, MINUTES_PER_DAY)


def write(pipe: Pipeline, minute: int, values: Mapping[str, int]) -> None:
    """Queue on `pipe` the writes of one minute's values, by series (zeros are skipped:
    a new day's string starts as zeros)."""
    day, slot = day_and_slot(minute)
    expires = (day + KEPT_DAYS) * 86400  # a week after the day ends
    for series, value in values.items():
        if value <= 0:
            continue
        key = keys.chart_day(series, day)
        pipe.set(key, _EMPTY_DAY, nx=True)  # full size at once: it never grows
        pipe.expireat(key, expires)
        pipe.bitfield(key).set("u32", f"#{slot}", min(value, LARGEST)).execute()  # queued on `pipe`


def read(raw: Redis, series: Iterable[str], first: int, last: int) -> dict[str, list[int]]:
    """Each series' values for the minutes `first`..`last` (inclusive), oldest first, in one
    round trip: 0 where nothing was written (or the day has expired). `raw` must not decode
    replies (the runtime's `rq_redis`): the values are bytes, not text."""
    names = list(series)
    if last < first:
        return {name: [] for name in names}
    pipe = raw.pipeline(transaction=False)
    spans = []  # (day, first slot, last slot) of each day the minutes cover
    for day in range(first // MINUTES_PER_DAY, last // MINUTES_PER_DAY + 1):
        low = max(first, day * MINUTES_PER_DAY) - day * MINUTES_PER_DAY
        high = min(last, (day + 1) * MINUTES_PER_DAY - 1) - day * MINUTES_PER_DAY
        spans.append((day, low, high))
    for name in names:
        for day, low, high in spans:
            pipe.getrange(keys.chart_day(name, day), low * WIDTH, (high + 1) * WIDTH - 1)
    replies = iter(pipe.execute())
    found = {}
    for name in names:
        values: list[int] = []
        for _, low, high in spans:
            count = high - low + 1
            got = cast(bytes, next(replies) or b"").ljust(count * WIDTH, b"\0")
            values += struct.unpack(f">{count}I", got)
        found[name] = values
    return found
