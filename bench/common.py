"""Steps several scenarios share: registering texters, warming up, waiting, counting."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from redis import Redis

from bench import wrk
from bench.procs import Fleet
from gateway.microblog import subscribers
from gateway.phones import PhoneVault
from gateway.store import keys


def register(redis: Redis, vault: PhoneVault, numbers: list[str], threads: int = 4) -> list[int]:
    """Subscribers for these numbers, made through Kabootar's own registration (as a first text
    would); returns their ids in order. Used so that a run's texters are known ones."""

    def one(number: str) -> int:
        return subscribers.register(redis, vault.lookup_key(number), vault.encrypt(number)).id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, numbers, chunksize=256))


def posts(redis: Redis) -> int:
    """Posts in the public timeline: what /api/v1/posts lists."""
    return int(redis.zcard(keys.TIMELINE_ALL))


def wait_until(
    done: Callable[[], bool], timeout: float, fleet: Fleet | None = None, every: float = 0.02
) -> bool:
    """Poll `done` until true (True) or `timeout` seconds pass (False); fail if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() > deadline:
            return False
        if fleet is not None:
            fleet.check_alive()
        time.sleep(every)


def send_once(
    base_url: str, requests: Path, path: str, seconds: float, connections: int = 32, log: Path | None = None
) -> wrk.WrkResult:
    """Offer every request in the file once, as fast as wrk goes (at most `seconds`)."""
    env = {"REQS": str(requests), "PATH_SMS": path}
    return wrk.run(base_url, seconds, script=wrk.SEND_ONCE, env=env, connections=connections, log=log)


def warm_up(base_url: str, requests: Path, path: str, log: Path | None = None) -> wrk.WrkResult:
    """A few hundred texts first, so every worker process has loaded its code and connections."""
    return send_once(base_url, requests, path, seconds=10, connections=8, log=log)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: round(after.get(role, 0.0) - before.get(role, 0.0), 2) for role in after}


def cores(cpu: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU seconds per role over a window, as cores busy on average."""
    return {role: round(s / seconds, 2) for role, s in cpu.items()} if seconds > 0 else {}
