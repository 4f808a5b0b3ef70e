"""The Runtime a worker process's jobs use: built on first use, never at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import Config
from gateway.runtime import Runtime

if TYPE_CHECKING:
    from rq import Queue

_runtime: Runtime | None = None


def use(runtime: Runtime) -> None:
    """Install the runtime for this process (the worker entry point and tests do)."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_config(Config.from_env())
    return _runtime


def rq_queues() -> dict[str, Queue]:
    """RQ queues for the jobs a job queues: on the running job's connection (RQ's binary one)."""
    from redis import Redis
    from rq import get_current_job

    from gateway.store.queues import make_queues

    job = get_current_job()
    connection = job.connection if job else Redis.from_url(current().config.redis_url or "")
    return make_queues(connection)
