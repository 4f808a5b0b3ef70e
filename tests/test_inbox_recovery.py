"""Texts survive a drain job that dies: its claimed batch returns to the inbox."""

from __future__ import annotations

import threading
import time

from redis import Redis

from gateway.microblog import posts
from gateway.pipeline import batch, inbox
from gateway.runtime import Runtime
from gateway.store import keys
from workers import worker


def posted(redis: Redis) -> list[str]:
    return [p.body for p in posts.page(redis, keys.TIMELINE_ALL, None, 100)[0]]


def test_batch_of_a_dead_drain_job_is_returned_and_posted_once(twilio, redis: Redis, runtime: Runtime, drain):
    for i in range(3):
        twilio.text(body=f"text {i}")

    def die_mid_batch(runtime: Runtime, sids: list[str]) -> None:
        batch.process(runtime, sids[:1])  # one post made, then the worker is killed
        raise SystemExit

    try:
        inbox.drain(runtime, process_batch=die_mid_batch)
    except SystemExit:
        pass
    assert redis.llen(keys.INBOX) == 0  # the batch sits in the dead job's claim
    assert inbox.reclaim_stale(redis, older_than=0) == 3
    drain()
    assert sorted(posted(redis)) == ["text 0", "text 1", "text 2"]
    assert redis.zcard(keys.INBOX_CLAIMS) == 0


def test_watchdog_schedules_a_drain_for_texts_nobody_scheduled(twilio, redis: Redis, runtime: Runtime, drain):
    twilio.text(body="stranded")
    redis.delete(keys.INBOX_DRAIN_SCHEDULED)  # the drain job's enqueue was lost
    redis.delete(*redis.keys("rq:queue:*"))
    stop = threading.Event()
    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    thread = threading.Thread(target=worker.watch, args=(runtime, rq_redis, "test-worker", stop))
    thread.start()
    deadline = time.monotonic() + 5
    while not redis.exists(keys.INBOX_DRAIN_SCHEDULED) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    drain()
    assert posted(redis) == ["stranded"]
    assert redis.zscore(keys.WORKER_HEARTBEAT, "test-worker") is not None
