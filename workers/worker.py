"""The worker process: an RQ SimpleWorker plus a watchdog thread.

SimpleWorker runs jobs in the worker process itself. RQ's default Worker forks a
child per job, which costs ~10 ms each (the baseline's forking worker manages ~87
jobs/s against ~390/s without the fork); our jobs are short, idempotent and
never hold state between runs, so the isolation a fork buys is not worth it.

The watchdog beats a heartbeat for /readyz and, every few seconds, returns texts
and SMS from crashed jobs to their queues and schedules a drain where work waits
with none scheduled, so a killed worker delays messages by seconds, never strands them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker

from gateway import inbox, keys, outbound, queues, sender, throttle
from gateway.ops import backlog
from gateway.runtime import Runtime
from workers import context

log = logging.getLogger(__name__)

WATCH_INTERVAL = 5.0
BACKLOG_SAMPLE_INTERVAL = 10.0


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def watch(runtime: Runtime, rq_redis: Redis, name: str, stop: threading.Event) -> None:
    """Heartbeat and inbox recovery, until `stop` is set."""
    rq_queues = queues.make_queues(rq_redis)
    last_sample = 0.0
    while not stop.is_set():
        try:
            runtime.redis.zadd(keys.WORKER_HEARTBEAT, {name: time.time()})
            inbox.reclaim_stale(runtime.redis)
            throttle.promote_due(runtime.redis)
            if inbox.needs_drain(runtime.redis):
                queues.enqueue_drain(rq_queues[keys.QUEUE_INBOUND])
            for lane in sender.needs_drain(runtime.redis):
                outbound.enqueue_send_job(rq_queues[outbound.RQ_QUEUE_OF_LANE[lane]], lane)
            if time.monotonic() - last_sample >= BACKLOG_SAMPLE_INTERVAL:
                # The console's sparklines read these samples; one worker's per minute suffices.
                backlog.sample_now(runtime.redis, rq_queues)
                last_sample = time.monotonic()
        except RedisError as e:
            log.warning("watchdog cannot reach Redis: %s", e)
        stop.wait(WATCH_INTERVAL)


def run(runtime: Runtime, burst: bool = False) -> None:
    """Work the queues in priority order until stopped (or, with burst, until empty)."""
    context.use(runtime)
    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    name = worker_name()
    stop = threading.Event()
    watchdog = threading.Thread(target=watch, args=(runtime, rq_redis, name, stop), daemon=True)
    watchdog.start()
    worker = SimpleWorker(
        [queues.make_queues(rq_redis)[q] for q in keys.QUEUES], connection=rq_redis, name=name
    )
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        try:
            runtime.redis.zrem(keys.WORKER_HEARTBEAT, name)
        except RedisError:
            pass
