"""Taking over the RQ jobs of a dead worker within seconds, not RQ's minutes.

RQ notices a killed worker's job only once the job's StartedJobRegistry entry expires
(for a SimpleWorker: the job timeout plus a minute, 11 minutes for a drain job) and a
live worker's maintenance pass (every 10 minutes by default) cleans the registry. A
killed worker that held the scheduler lock also stalls every scheduled job (RQ's retries,
sends due later) until the lock expires and some worker's maintenance takes it again.

The watchdog knows sooner: every worker beats `keys.WORKER_HEARTBEAT` every second, so
a worker whose beat is `STALE_SECONDS` old is dead. `recover` then puts the jobs it had
started, and those it had taken off a queue but not yet started (workers/dequeue.py),
back at the front of their queues (spending one of the job's own retries; with none left
the job fails, as RQ's cleanup would have it) and drops its RQ registration; and it frees
scheduler locks whose scheduler stopped beating, so a live worker's next maintenance pass
starts a scheduler. A job run twice does nothing twice: the work itself lives in our own
structures (inbox claims, outbound lanes), which a rerun resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import cast

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import parse_composite_key, utcparse
from rq.worker import BaseWorker
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

from gateway.outbox import sender
from gateway.pipeline import inbox
from gateway.store import keys, queues

log = logging.getLogger(__name__)

# Watchdogs beat every second (workers/worker.py) and a Redis call gives up after 5 s:
# ten beats missed in a row is a dead worker, not a slow one.
STALE_SECONDS = 10.0
# Dead workers stay listed (as "gone" on the console) this long, then their beat is dropped.
FORGET_AFTER_SECONDS = 3600.0
_RETAKEN = (JobStatus.STARTED, JobStatus.QUEUED)  # queued: it died before marking the job started
LOCK_MS = 5_000  # a pass takes milliseconds; a watchdog killed holding the lock delays the next this long


@dataclass
class Recovered:
    """What one pass took over: dead worker names, job ids requeued or failed, queues unlocked."""

    workers: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unlocked: list[str] = field(default_factory=list)


def dead_workers(
    redis: Redis, me: str = "", now: float | None = None, stale: float = STALE_SECONDS
) -> dict[str, float]:
    """Workers whose watchdog stopped beating `stale` seconds ago and that nobody took over
    yet (never `me`), with their last beat.

    A beat missed because Redis itself was down does not count: beats are aged from
    Redis's own start at the latest, so a restarted Redis gives every worker time to beat.
    """
    now = time.time() if now is None else now
    pipe = redis.pipeline(transaction=False)
    pipe.info("server")
    pipe.zrangebyscore(keys.WORKER_HEARTBEAT, now - FORGET_AFTER_SECONDS, now - stale, withscores=True)
    info, found = pipe.execute()
    if time.time() - float(info["uptime_in_seconds"]) > now - stale:
        return {}
    beats = {str(name): float(beat) for name, beat in found if name != me}
    if not beats:
        return {}
    done = redis.zmscore(keys.WORKERS_RECOVERED, list(beats))
    return {name: beat for (name, beat), at in zip(beats.items(), done, strict=True) if at != beat}


def _started(queue: Queue) -> list[str]:
    """The entries of `queue`'s StartedJobRegistry: "<job id>:<execution id>"."""
    entries = cast(list[bytes], queue.connection.zrange(queue.started_job_registry.key, 0, -1))
    return [e.decode() for e in entries]


def _owners(rq_redis: Redis, composites: list[str]) -> list[str | None]:
    """The worker running each started job ("<job id>:<execution id>"), in one round trip."""
    pipe = rq_redis.pipeline(transaction=False)
    for composite in composites:
        job_id, execution_id = parse_composite_key(composite)
        pipe.hget(Execution(execution_id, job_id, rq_redis).key, "worker_name")
    return [o.decode() if isinstance(o, bytes) else o for o in pipe.execute()]


def requeue_started(
    rq_redis: Redis,
    workers: Collection[str],
    queue_names: Iterable[str] = queues.ALL,
    out: Recovered | None = None,
) -> Recovered:
    """Put the jobs `workers` had started back at the front of their queues.

    Each registry entry is taken with ZREM, so of two watchdogs doing this at once only
    one requeues a given job. A job with no retries left fails instead.
    """
    out = out or Recovered()
    if workers:
        _take_started(rq_redis, queue_names, lambda job_id, owner: owner in workers, out)
    return out


def _take_started(
    rq_redis: Redis, queue_names: Iterable[str], taken: Callable[[str, str], bool], out: Recovered
) -> None:
    """Requeue (or fail) the started jobs for which `taken(job id, owner)` holds, asked only
    after each queue's registry was read. Each entry is taken with ZREM: of two takers, or a
    taker and the job finishing meanwhile, only one gets it."""
    for name in queue_names:
        queue = Queue(name, connection=rq_redis)
        composites = _started(queue)
        for composite, owner in zip(composites, _owners(rq_redis, composites), strict=True):
            job_id, _ = parse_composite_key(composite)
            if owner is None or not taken(job_id, owner):
                continue
            if rq_redis.zrem(queue.started_job_registry.key, composite):
                _take_over(queue, composite, owner, out)


def _take_over(queue: Queue, composite: str, owner: str, out: Recovered) -> None:
    rq_redis = queue.connection
    job_id, execution_id = parse_composite_key(composite)
    job = Job.fetch_many([job_id], connection=rq_redis)[0]
    execution = Execution(execution_id, job_id, rq_redis, worker_name=owner)
    with rq_redis.pipeline() as pipe:
        if job is None:  # finished (results not kept) as the worker died
            pipe.delete(execution.key)
            pipe.execute()
            return
        execution.delete(job, pipe)
        if job.get_status(refresh=False) in _RETAKEN:
            _requeue_or_fail(queue, job, owner, pipe, out)
        pipe.execute()


def _requeue_or_fail(queue: Queue, job: Job, owner: str, pipe: Pipeline, out: Recovered) -> None:
    """Queue `job` again at the front, spending one retry; with none left it fails."""
    if job.retries_left:
        job.retries_left -= 1
        job.started_at = None
        # As RQ's own StartedJobRegistry.requeue does: in the caller's transaction.
        queue._enqueue_job(job, pipeline=pipe, at_front=True)
        out.requeued.append(job.id)
        log.warning("requeued job %s (%s), left unfinished by worker %s", job.id, job.description, owner)
    else:
        record_job_failure(job, f"its worker {owner} stopped while running it", pipe)
        out.failed.append(job.id)
        log.warning(
            "job %s (%s), left unfinished by worker %s, had no retries left", job.id, job.description, owner
        )


def requeue_popped(rq_redis: Redis, worker: str, out: Recovered | None = None) -> Recovered:
    """Put the jobs `worker` took off the queues but never started back at their fronts.

    Each id is taken with LREM, so of two callers only one requeues it; a job registered
    as started meanwhile is `requeue_started`'s.
    """
    out = out or Recovered()
    key = keys.worker_popped(worker)
    for job_id in (raw.decode() for raw in cast(list[bytes], rq_redis.lrange(key, 0, -1))):
        if not rq_redis.lrem(key, 1, job_id):
            continue
        job = Job.fetch_many([job_id], connection=rq_redis)[0]
        if job is None or job.get_status(refresh=False) != JobStatus.QUEUED:
            continue
        queue = Queue(job.origin, connection=rq_redis)
        started = cast(list[bytes], rq_redis.zrange(queue.started_job_registry.key, 0, -1))
        if rq_redis.lpos(queue.key, job.id) is not None or any(
            e.decode().startswith(f"{job.id}:") for e in started
        ):
            continue
        with rq_redis.pipeline() as pipe:
            _requeue_or_fail(queue, job, worker, pipe, out)
            pipe.execute()
    return out


def requeue_stray(
    rq_redis: Redis, worker: str, running: Callable[[], str | None], queue_names: Iterable[str] = queues.ALL
) -> Recovered:
    """Requeue the jobs registered as started by `worker`, which is alive, but that it is not
    running (`running()`: the id of the job it is running now, read after the registries:
    a job started since is not among the entries read).

    A Redis failover loses the last writes the replica had not received yet: the job's
    start may have reached the new primary and its finish not. The worker has moved on,
    so no one would touch the entry until RQ's cleanup, job timeout plus a minute later,
    failed the job on the console. Requeued, it reruns and does nothing twice.
    """
    out = Recovered()
    _take_started(rq_redis, queue_names, lambda job_id, owner: owner == worker and job_id != running(), out)
    return out


def requeue_own(rq_redis: Redis, worker: str) -> Recovered:
    """A worker's own jobs, started or only taken off a queue, back at their queues' fronts
    (its loop stopped: once its beat is gone no other watchdog would hand them on)."""
    out = requeue_started(rq_redis, {worker})  # first: requeue_popped skips what it queued
    return requeue_popped(rq_redis, worker, out)


def forget_rq_worker(rq_redis: Redis, name: str, queue_names: Iterable[str] = queues.ALL) -> None:
    """Drop a dead worker from RQ's registry of workers (RQ would keep it up to 11 minutes)."""
    key = BaseWorker.redis_worker_namespace_prefix + name
    with rq_redis.pipeline() as pipe:
        pipe.srem(REDIS_WORKER_KEYS, key)
        for queue in queue_names:
            pipe.srem(WORKERS_BY_QUEUE_KEY % queue, key)
        pipe.delete(key, key + ":executions")
        pipe.execute()


def release_dead_scheduler_locks(
    rq_redis: Redis, queue_names: Iterable[str] = queues.ALL, stale: float = STALE_SECONDS
) -> list[str]:
    """Free the scheduler locks of schedulers that stopped beating; returns the queue names."""
    released = []
    for name in queue_names:
        lock = RQScheduler.get_locking_key(name)
        owner = rq_redis.get(lock)
        if owner is None:
            continue
        owner_name = owner.decode() if isinstance(owner, bytes) else str(owner)
        beat = rq_redis.hget(SCHEDULER_KEY_TEMPLATE % owner_name, "last_heartbeat")
        if beat is not None:
            age = time.time() - utcparse(beat.decode() if isinstance(beat, bytes) else beat).timestamp()
            if age < stale:
                continue
        if release_lock(rq_redis, lock, owner_name):
            released.append(name)
    if released:
        log.warning("freed the scheduler lock of a dead scheduler for %s", ", ".join(released))
    return released


def recover(
    redis: Redis,
    rq_redis: Redis,
    me: str = "",
    now: float | None = None,
    stale: float = STALE_SECONDS,
    schedulers: bool = True,
) -> Recovered:
    """One pass: take over dead workers' jobs and forget them in RQ; with `schedulers`, also
    free dead schedulers' locks and drop beats older than FORGET_AFTER_SECONDS.

    One watchdog at a time (a short lock), so a job is never requeued twice.
    """
    out = Recovered()
    beats = dead_workers(redis, me, now=now, stale=stale)
    dead = list(beats)
    token = me or "recovery"
    if dead and redis.set(keys.RECOVERY_LOCK, token, nx=True, px=LOCK_MS):
        try:
            out.workers = dead
            requeue_started(rq_redis, set(dead), out=out)  # first: requeue_popped skips what it queued
            pipe = rq_redis.pipeline(transaction=False)
            for name in dead:
                pipe.llen(keys.worker_popped(name))
            for name, waiting in zip(dead, pipe.execute(), strict=True):
                if waiting:
                    requeue_popped(rq_redis, name, out)
            if out.requeued or out.failed:
                # Those jobs' claimed batches are orphans: return them now, not once they
                # look abandoned (the modules' CLAIM_STALE_SECONDS). Were one still being
                # worked on, redoing it would post or send nothing twice.
                inbox.reclaim_stale(redis, older_than=stale / 2)
                sender.reclaim_stale(redis, older_than=stale / 2)
            registered = {m.decode() for m in cast(set[bytes], rq_redis.smembers(REDIS_WORKER_KEYS))}
            for name in dead:
                if BaseWorker.redis_worker_namespace_prefix + name in registered:
                    forget_rq_worker(rq_redis, name)
            redis.zadd(keys.WORKERS_RECOVERED, beats)  # done with them (at these beats)
        finally:
            release_lock(redis, keys.RECOVERY_LOCK, token)
    if schedulers:
        out.unlocked = release_dead_scheduler_locks(rq_redis, stale=stale)
        for key in (keys.WORKER_HEARTBEAT, keys.WORKERS_RECOVERED):
            redis.zremrangebyscore(key, "-inf", time.time() - FORGET_AFTER_SECONDS)
    return out
