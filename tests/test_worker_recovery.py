"""A dead worker's RQ jobs go back to the queues within seconds (workers/recovery.py).

Each test leaves a job the way a SIGKILLed worker does (dequeued and marked started,
never finished) and runs one recovery pass, as the watchdog does every few seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler
from rq.utils import utcformat

from gateway.pipeline import intake
from gateway.runtime import Runtime
from gateway.store import keys, queues
from workers import dequeue, recovery
from workers.worker import Worker

DEAD = "another-host.4242"  # not this host, so no pid check can vouch for it


def rq_client(runtime: Runtime) -> Redis:
    return Redis.from_url(runtime.config.redis_url or "")


def start_and_die(rq_redis: Redis, queue: Queue, name: str = DEAD) -> Job:
    """Dequeue the next job as worker `name` and mark it started, then "die" (stop beating)."""
    worker = SimpleWorker([queue], connection=rq_redis, name=name)
    if not rq_redis.exists(worker.key):  # a second job of the same worker
        worker.register_birth()
    dequeued = Queue.dequeue_any([queue], None, connection=rq_redis)
    assert dequeued is not None
    job = dequeued[0]
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    assert job.get_status() == JobStatus.STARTED
    return job


def beat(redis: Redis, name: str, seconds_ago: float) -> None:
    redis.zadd(keys.WORKER_HEARTBEAT, {name: time.time() - seconds_ago})


def later() -> float:
    """A minute from now: the session's Redis may have started a moment ago (see the last tests)."""
    return time.time() + 60


def inbound(rq_redis: Redis) -> Queue:
    return queues.make(rq_redis)[queues.INBOUND]


def test_job_of_a_worker_that_stopped_beating_is_requeued_at_the_front(runtime: Runtime, redis: Redis, drain):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    job = start_and_die(rq_redis, queue)
    queue.enqueue("workers.jobs.drain_inbox", description="queued meanwhile")
    beat(redis, DEAD, seconds_ago=60)

    found = recovery.recover(redis, rq_redis, me="live-host.1", now=later())

    assert found.workers == [DEAD] and found.requeued == [job.id] and found.failed == []
    assert queue.get_job_ids()[0] == job.id  # ahead of the job queued meanwhile
    assert Job.fetch(job.id, connection=rq_redis).retries_left == 4  # one of its 5 retries spent
    assert queue.started_job_registry.get_job_ids(cleanup=False) == []
    assert not rq_redis.sismember("rq:workers", f"rq:worker:{DEAD}")  # RQ no longer lists it
    drain()  # a live worker takes it up
    assert queue.count == 0 and queue.started_job_registry.get_job_ids(cleanup=False) == []


def test_a_second_pass_requeues_nothing_twice(runtime: Runtime, redis: Redis):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    job = start_and_die(rq_redis, queue)
    beat(redis, DEAD, seconds_ago=60)

    first = recovery.recover(redis, rq_redis, me="live-host.1", now=later())
    second = recovery.recover(redis, rq_redis, me="live-host.2", now=later())  # the other worker's watchdog

    assert first.requeued == [job.id] and second.requeued == []
    assert second.workers == []  # taken over once, not looked at again every second
    assert queue.get_job_ids() == [job.id]


def test_job_with_no_retries_left_fails_instead(runtime: Runtime, redis: Redis):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    queue.enqueue("workers.jobs.drain_inbox", description="drain inbox")  # no Retry
    job = start_and_die(rq_redis, queue)
    beat(redis, DEAD, seconds_ago=60)

    found = recovery.recover(redis, rq_redis, now=later())

    assert found.failed == [job.id] and found.requeued == []
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert queue.count == 0


def test_job_of_a_worker_still_beating_is_left_alone(runtime: Runtime, redis: Redis):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    busy = start_and_die(rq_redis, queue, name="busy-host.7")
    now = later()
    beat(redis, "busy-host.7", seconds_ago=2 - (now - time.time()))  # 2 s before `now`: merely busy

    found = recovery.recover(redis, rq_redis, now=now)

    assert found.workers == [] and found.requeued == []
    assert queue.started_job_registry.get_job_ids(cleanup=False) == [busy.id]


def test_a_started_entry_its_live_worker_is_no_longer_running_is_requeued_and_its_running_one_kept(
    runtime: Runtime, redis: Redis
):
    """A failover can keep a job's start and lose its finish: the worker lives on, moved on."""
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    queue.enqueue("workers.jobs.drain_inbox", description="the job it runs now", retry=Retry(max=1))
    lost = start_and_die(rq_redis, queue, name="live-host.1")  # its finish went with the old primary
    running = start_and_die(rq_redis, queue, name="live-host.1")
    queue.enqueue("workers.jobs.drain_inbox", description="another worker's", retry=Retry(max=1))
    others = start_and_die(rq_redis, queue, name="live-host.2")

    found = recovery.requeue_stray(rq_redis, "live-host.1", running=lambda: running.id)

    assert found.requeued == [lost.id]
    assert queue.get_job_ids() == [lost.id]
    assert set(queue.started_job_registry.get_job_ids(cleanup=False)) == {running.id, others.id}
    assert recovery.requeue_stray(rq_redis, "live-host.1", running=lambda: running.id).requeued == []


def test_beats_missed_while_redis_was_down_do_not_count(runtime: Runtime, redis: Redis):
    uptime = float(redis.info("server")["uptime_in_seconds"])
    beat(redis, DEAD, seconds_ago=uptime + 200)  # last beat before Redis (re)started
    assert recovery.dead_workers(redis, stale=uptime + 100) == {}  # Redis is younger than `stale`
    assert list(recovery.dead_workers(redis, now=time.time() + uptime + 300)) == [DEAD]


def test_lock_of_a_dead_scheduler_is_freed_and_a_live_ones_kept(runtime: Runtime, redis: Redis):
    rq_redis = rq_client(runtime)
    all_queues = queues.make(rq_redis)
    dead = RQScheduler([all_queues[queues.INBOUND]], connection=rq_redis)
    live = RQScheduler([all_queues[queues.REPLIES]], connection=rq_redis)
    for scheduler in (dead, live):
        assert scheduler.acquire_locks()
        scheduler.register_birth()
    long_ago = datetime.now(UTC) - timedelta(seconds=60)
    rq_redis.hset(dead.key, "last_heartbeat", utcformat(long_ago))

    assert recovery.release_dead_scheduler_locks(rq_redis) == [queues.INBOUND]
    assert rq_redis.get(RQScheduler.get_locking_key(queues.REPLIES)) == live.name.encode()
    taker = RQScheduler([all_queues[queues.INBOUND]], connection=rq_redis)
    assert taker.acquire_locks() == {queues.INBOUND}  # what a live worker's maintenance does


def test_job_taken_off_the_queue_by_a_worker_that_died_before_starting_it_is_requeued(
    runtime: Runtime, redis: Redis
):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    taken = dequeue.for_worker(DEAD).dequeue_any([queue], None, connection=rq_redis)
    assert taken is not None  # killed here: RQ's BLPOP would have lost the job
    job = taken[0]
    assert queue.get_job_ids() == [] and rq_redis.lrange(keys.worker_popped(DEAD), 0, -1) == [job.id.encode()]
    beat(redis, DEAD, seconds_ago=60)

    found = recovery.recover(redis, rq_redis, now=later())

    assert found.requeued == [job.id]
    assert queue.get_job_ids() == [job.id] and not rq_redis.exists(keys.worker_popped(DEAD))


def test_a_job_taken_just_as_redis_died_is_run_by_the_same_worker_once_it_asks_again(
    runtime: Runtime, redis: Redis
):
    """Redis moved the job into the worker's list, then died before the answer reached the
    worker (with appendfsync always the move survives the restart); RQ asks again."""
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    queue.enqueue("tests.test_ops.flaky", "runs-of-the-lost-job")  # counts its runs
    rq_redis.lmove(queue.key, keys.worker_popped("this-host.3"), "LEFT", "RIGHT")  # the lost answer
    beat(redis, "this-host.3", seconds_ago=0)  # alive: no other worker's recovery will hand it on

    Worker("this-host.3", rq_redis).work(burst=True, logging_level="WARNING")

    assert redis.get("runs-of-the-lost-job") == "1"  # run, and once
    assert not rq_redis.exists(keys.worker_popped("this-host.3"))


def test_our_worker_leaves_nothing_behind_once_a_job_is_done(runtime: Runtime, redis: Redis):
    rq_redis = rq_client(runtime)
    queue = inbound(rq_redis)
    intake.schedule_drain({queues.INBOUND: queue})
    worker = Worker("this-host.1", rq_redis)

    worker.work(burst=True, logging_level="WARNING")

    assert queue.count == 0 and queue.started_job_registry.get_job_ids(cleanup=False) == []
    assert not rq_redis.exists(keys.worker_popped("this-host.1"))
    assert queue.failed_job_registry.get_job_ids() == []


def test_an_idle_worker_wakes_for_a_job_on_any_queue(runtime: Runtime):
    rq_redis = rq_client(runtime)
    replies = queues.make(rq_redis)[queues.REPLIES]
    all_queues = list(queues.make(rq_redis).values())
    later_on = threading.Timer(0.5, replies.enqueue, ["workers.jobs.drain_inbox"])
    later_on.start()

    start = time.monotonic()
    taken = dequeue.for_worker("this-host.2").dequeue_any(all_queues, 5, connection=rq_redis)
    later_on.join()

    assert taken is not None and taken[1].name == queues.REPLIES  # not the queue it blocks on
    assert 0.5 <= time.monotonic() - start < 0.5 + dequeue.POLL_SECONDS + 0.5
