"""How many direct messages a texter may send: DM_PER_HOUR in any hour (a sliding window).

Each texter's DMs of the last hour are a sorted set of the texts' message ids, so a drain
that runs a text twice counts it once, and FORGET ME has one key to erase.
"""

from __future__ import annotations

import time

from redis import Redis

from gateway.store import keys, scripts

WINDOW_SECONDS = 3600

# KEYS: the texter's DMs.  ARGV: now, the window, the most allowed, this text's message id.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def take_dm(redis: Redis, sub_id: int, sid: str, per_hour: int) -> bool:
    """Count the DM sent by text `sid`; False (and not counted) when `sub_id` has sent
    `per_hour` in the last hour already."""
    args: list[str | int] = [f"{time.time():.3f}", WINDOW_SECONDS, per_hour, sid]
    return bool(scripts.load(redis, _TAKE)(keys=[keys.dm_rate(sub_id)], args=args))
