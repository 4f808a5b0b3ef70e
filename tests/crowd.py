"""A live Kabootar with a crowd of followers, for the fan-out fault tests.

`kabootar web` (with the Twilio simulator) and several `kabootar worker` processes run
against the tests' Redis; followers are registered straight through the domain functions
(`subscribers.register`, `follows.follow_user`) with real E.164 numbers, which is what
thousands of "FOLLOW @author" texts would leave behind, only faster. The author's post
then goes in as a signed webhook, so the fan-out runs as it would in production.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rq import Worker

from gateway.config import Config
from gateway.microblog import follows, subscribers
from gateway.outbox import outbound
from gateway.providers.simulated import handsets
from gateway.providers.twilio.simulator import store as simstore
from gateway.runtime import Runtime
from gateway.store import keys
from tests.live import CLI, Gateway, Processes, clean_env, web_settings


@dataclass
class Crowd:
    """One author and their followers, by number and subscriber id."""

    author: str
    author_id: int
    followers: list[str]
    follower_ids: list[int]

    def received(self, runtime: Runtime) -> Counter[str]:
        """How many SMS the simulator accepted for each follower (by number)."""
        by_hash = handsets.sent_count_by_recipient(runtime.redis)
        return Counter({n: by_hash.get(handsets.number_hash(n), 0) for n in self.followers})

    def statuses(self, runtime: Runtime, intent: str) -> Counter[str]:
        """Our own record of the followers' SMS for `intent`, by status."""
        pipe = runtime.redis.pipeline(transaction=False)
        for sub in self.follower_ids:
            pipe.hget(keys.outbound_message(outbound.message_id(intent, sub)), "status")
        return Counter(str(s) for s in pipe.execute())


def simulator_settled(runtime: Runtime) -> bool:
    """Whether the simulator has reported the final status of every message it accepted
    (so no status callback is still on its way to the gateway)."""
    redis = runtime.redis
    found = list(redis.scan_iter(match=simstore.P + "msg:*", count=1000))
    pipe = redis.pipeline(transaction=False)
    for key in found:
        pipe.hget(key, "status")
    return all(status in ("delivered", "undelivered", "failed") for status in pipe.execute())


def gather(runtime: Runtime, followers: int, prefix: str = "+98912") -> Crowd:
    """Register an author and `followers` texters following them (numbers `prefix` + 7 digits)."""
    vault, redis = runtime.vault, runtime.redis
    author = f"{prefix}9999999"
    author_id = subscribers.register(redis, vault.lookup_key(author), vault.encrypt(author)).id
    numbers = [f"{prefix}{n:07d}" for n in range(1, followers + 1)]
    ids = [subscribers.register(redis, vault.lookup_key(n), vault.encrypt(n)).id for n in numbers]
    for sub in ids:
        follows.follow_user(redis, sub, author_id)
    return Crowd(author, author_id, numbers, ids)


@dataclass
class Fleet:
    """`kabootar web` and `kabootar worker` processes; workers can be killed and replaced."""

    procs: Processes
    env: dict[str, str]
    config: Config
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: int = 0

    def start_worker(self) -> str:
        name = f"worker-{self.started}"
        self.started += 1
        self.workers[name] = self.procs.start(name, [*CLI, "worker"], self.env)
        return name

    def kill(self, runtime: Runtime, rng: random.Random, busy_first: bool = False) -> bool:
        """SIGKILL a random worker (with `busy_first`, one running a job if there is one),
        wait for it and start a replacement, as a supervisor would. Returns whether the
        killed worker was in the middle of a job."""
        busy = busy_pids(runtime)
        live = sorted(n for n, p in self.workers.items() if p.poll() is None)
        working = [n for n in live if self.workers[n].pid in busy]
        proc = self.workers.pop(rng.choice(working if busy_first and working else live))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.start_worker()
        return proc.pid in busy


def busy_pids(runtime: Runtime) -> set[int]:
    """The pids of RQ workers running a job right now."""
    from redis import Redis

    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    try:
        return {w.pid for w in Worker.all(connection=rq_redis) if w.get_state() == "busy" and w.pid}
    finally:
        rq_redis.close()


def start_fleet(
    redis_server: str, procs: Processes, var_dir: Path, workers: int, **extra: str
) -> tuple[Fleet, Gateway, Runtime]:
    """`kabootar web` plus `workers` workers against `redis_server`, ready; and a Runtime
    (same secret key) for the test to set things up and count with."""
    settings = web_settings(redis_server, var_dir, "fault-test-secret-key", **extra)
    env = clean_env(**settings)
    config = Config.from_env(settings)
    fleet = Fleet(procs, env, config)
    procs.start("web", [*CLI, "web"], env)
    for _ in range(workers):
        fleet.start_worker()
    gateway = Gateway(config, procs)
    gateway.wait_ready()
    return fleet, gateway, Runtime.from_config(config)


def wait_for(
    what: str, predicate: Callable[[], bool], deadline: float, procs: Processes, every: float = 0.25
) -> float:
    """Poll `predicate` until true; fail with the processes' last output past `deadline`
    (a `time.monotonic()`). Returns when it came true (monotonic)."""
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in time\n{procs.output()[-4000:]}")
        time.sleep(every)
    return time.monotonic()
