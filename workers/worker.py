"""The worker process: an RQ SimpleWorker plus a watchdog thread.

SimpleWorker runs jobs in the worker process itself. RQ's default Worker forks a
child per job, which costs ~10 ms each (the baseline's forking worker manages ~87
jobs/s against ~390/s without the fork); our jobs are short, idempotent and
never hold state between runs, so the isolation a fork buys is not worth it.

The watchdog beats a heartbeat for /readyz and, every few seconds, returns texts
and SMS from crashed jobs to their queues and schedules a drain where work waits
with none scheduled, so a killed worker delays messages by seconds, never strands them.
It also hands the RQ jobs of workers that stopped beating to the live ones
(workers/recovery.py): RQ alone would take minutes.

RQ's work loop quits when Redis goes away in the middle of a job; `run` then waits for
Redis and starts it again (after requeueing the job it had started), so a Redis restart
never needs a worker restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job

from gateway.config import Config, ConfigError
from gateway.outbox import outbound, routes, sender
from gateway.pipeline import inbox, intake, throttle
from gateway.runtime import Runtime
from gateway.store import connect, keys, primary, queues, rollup, stats
from workers import context, dequeue, recovery

log = logging.getLogger(__name__)

BEAT_INTERVAL = 1.0  # a dead worker is noticed within recovery.STALE_SECONDS of its last beat
WATCH_INTERVAL = 5.0
BACKLOG_SAMPLE_INTERVAL = 10.0
# RQ's maintenance pass (registry cleanup, restarting or taking over the scheduler) runs
# every 10 minutes by default; a scheduler lock freed by `recovery` is taken at the next pass.
MAINTENANCE_INTERVAL = 15
# RQ waits for a job for worker_ttl - 15 s (default 405 s), and runs maintenance only
# between jobs or when that wait ends: an idle worker runs it every 20 s.
RQ_WORKER_TTL = 35
RESTART_DELAY = 1.0  # between RQ work loops, when one quit on a Redis failure
PUBSUB_POLL_SECONDS = 1.0  # see Worker.subscribe: a stopping worker waits this long at most for it


class Worker(SimpleWorker):
    """RQ's SimpleWorker taking jobs with `dequeue` (never losing one), told apart from a
    stop request when its loop quits on an error."""

    # While Redis is away, RQ retries its dequeue backing off up to a minute; 2 s at most
    # puts a restarted Redis back to work at once.
    max_connection_wait_time = 2.0
    stopping = False
    running: str | None = None  # the id of the job being run, for the watchdog's recovery.requeue_stray

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.running = job.id  # before the job is registered as started
        try:
            super().execute_job(job, queue)
        finally:
            self.running = None

    def __init__(self, name: str, rq_redis: Redis, **options: Any) -> None:
        self.popped_key = keys.worker_popped(name)
        super().__init__(
            list(queues.ALL), connection=rq_redis, name=name, queue_class=dequeue.for_worker(name), **options
        )

    def prepare_execution(self, job: Job) -> Execution:
        execution = super().prepare_execution(job)
        # Registered as started: from here on recovery finds the job in StartedJobRegistry.
        self.connection.lrem(self.popped_key, 1, job.id)
        return execution

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # RQ leaves it unannotated

    def subscribe(self) -> None:
        """RQ's command channel (`rq.command.send_shutdown_command` and the like), polled every
        PUBSUB_POLL_SECONDS instead of RQ's 60.

        On stopping, RQ unsubscribes and then joins the channel's thread, and redis-py (8.x)
        joins without a limit. If the thread reads the unsubscribe reply before it is told to
        stop, it waits for a new subscription for its whole poll: an idle worker told to stop
        took 60 s to exit (so `kabootar run` killed it at 30 s, and a Ctrl-C left processes
        behind for that long). A short poll makes the stop take at most that.
        """
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ types it None
            sleep_time=PUBSUB_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def watch(
    runtime: Runtime,
    rq_redis: Redis,
    name: str,
    stop: threading.Event,
    running: Callable[[], str | None] = lambda: None,
) -> None:
    """Heartbeat, dead workers' jobs taken over, inbox and outbound recovery, until `stop` is
    set. `running` gives the id of the job this worker is running, if any."""
    rq_queues = queues.make(rq_redis)
    last_pass = last_sample = -WATCH_INTERVAL
    last_beat: float | None = None  # when this watchdog last reached Redis, if it did just before
    charts = rollup.Rollup(runtime.config.sms_providers)  # the week of per-minute buckets
    while not stop.is_set():
        try:
            now = time.time()
            runtime.redis.zadd(keys.WORKER_HEARTBEAT, {name: now})
            with contextlib.suppress(ResponseError):  # a Redis that refuses INFO is not noted
                primary.observe(runtime.redis, now)  # the console's "last failover" and its length
            # Only a watchdog that has been beating steadily judges others: after a pause
            # of its own (Redis stalled, the box asleep) theirs need a moment to resume too.
            # Wall-clock time: the monotonic clock stands still while the box sleeps.
            steady = last_beat is not None and now - last_beat < 3 * BEAT_INTERVAL
            last_beat = now
            beat = time.monotonic()
            full_pass = beat - last_pass >= WATCH_INTERVAL
            if steady:
                recovery.recover(runtime.redis, rq_redis, me=name, schedulers=full_pass)
            if full_pass:
                last_pass = beat
                recovery.requeue_stray(rq_redis, name, running)
                inbox.reclaim_stale(runtime.redis)
                throttle.promote_due(runtime.redis)
                if inbox.needs_drain(runtime.redis):
                    intake.schedule_drain(rq_queues)
                for lane in sender.needs_drain(runtime.redis):
                    outbound.enqueue_send_job(rq_queues, lane)
                routes.probe(runtime.redis, runtime.config)
            if beat - last_sample >= BACKLOG_SAMPLE_INTERVAL:
                # The console's sparklines read these samples; one worker's per minute suffices.
                stats.sample_depths(runtime.redis, queues.depths(runtime.redis, rq_queues))
                last_sample = beat
            charts.tick(runtime.redis, now)  # one worker a minute copies the minute just ended
        except RedisError as e:
            if last_beat is not None:
                log.warning("watchdog cannot reach Redis: %s", e)
            last_beat = None
        except Exception:
            log.exception("watchdog pass failed")  # a bug must not silence the heartbeat for good
        stop.wait(BEAT_INTERVAL)


def run(runtime: Runtime, burst: bool = False) -> None:
    """Work the queues in priority order until stopped (or, with burst, until empty)."""
    context.use(runtime)
    # Its own client: RQ raises the reply timeout of the connection it is given to fit its
    # blocking waits, which the runtime's clients keep short.
    rq_redis = connect.client(runtime.config, decode=False, timeouts=False)
    name = worker_name()
    stop = threading.Event()
    worker: Worker | None = None

    def running() -> str | None:
        return worker.running if worker is not None else None

    watchdog = threading.Thread(target=watch, args=(runtime, rq_redis, name, stop, running), daemon=True)
    watchdog.start()
    try:
        while True:
            worker = None
            try:
                worker = Worker(
                    name, rq_redis, worker_ttl=RQ_WORKER_TTL, maintenance_interval=MAINTENANCE_INTERVAL
                )
                worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
            except RedisError as e:  # Redis away at the start, or during RQ's own teardown
                log.warning("worker %s lost Redis: %s", name, e)
            stopping = worker is not None and worker.stopping
            if burst or stopping or not _resume(runtime.redis, rq_redis, name, time.time()):
                return
    finally:
        stop.set()
        try:
            recovery.requeue_own(rq_redis, name)  # stopped mid-job (a second Ctrl-C), or just after a pop
            runtime.redis.zrem(keys.WORKER_HEARTBEAT, name)
        except RedisError:
            pass


def _resume(redis: Redis, rq_redis: Redis, name: str, died_at: float) -> bool:
    """After RQ's loop quit on an error: wait for Redis, requeue the job it left behind.

    Returns False if asked to stop meanwhile. RQ's signal handlers talk to Redis, so ours
    stand in until the next loop installs them again.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    log.warning("worker %s: RQ's work loop quit; starting it again once Redis answers", name)
    while not stopping.wait(RESTART_DELAY):
        try:
            rq_redis.ping()
            recovery.requeue_own(rq_redis, name)
            recovery.forget_rq_worker(rq_redis, name)  # so the new loop may register the same name
            # Batches claimed before the loop died were lost with it (or, were Redis down,
            # with every other worker's job too): back to the inbox and the lanes now.
            inbox.reclaim_stale(redis, older_than=time.time() - died_at)
            sender.reclaim_stale(redis, older_than=time.time() - died_at)
            return True
        except RedisError:
            continue
    return False


def main() -> int:
    """`kabootar worker` and `python -m workers`: one worker, settings from the environment."""
    try:
        config = Config.from_env()
        if not (config.redis_url or config.redis_sentinels):
            raise ConfigError(connect.NOT_CONFIGURED)
        config.check_providers()
    except ConfigError as e:
        print(f"kabootar: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("worker %d started", os.getpid())
    run(Runtime.from_config(config))
    log.info("worker %d stopped", os.getpid())
    return 0
