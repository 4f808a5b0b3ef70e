"""Workers' heartbeats: each worker's watchdog beats `keys.WORKER_HEARTBEAT` every second
(workers/worker.py); /readyz and the console count a worker alive while its beat is recent.
"""

from __future__ import annotations

import time

from redis import Redis

from gateway.store import keys

# RQ's own heartbeat only moves between jobs; the watchdog's every second. A beat older than
# this is a worker that stopped (workers/recovery.py takes over its jobs sooner, at 10 s).
ALIVE_SECONDS = 30


def alive(redis: Redis, now: float | None = None) -> int:
    """How many workers beat within the last ALIVE_SECONDS."""
    now = time.time() if now is None else now
    return int(redis.zcount(keys.WORKER_HEARTBEAT, now - ALIVE_SECONDS, "+inf"))
