"""RQ queues, and the jobs the web app asks for, named by dotted path.

The web app never imports worker code: it enqueues "workers.jobs.<name>" strings.
Jobs carry ids only (never a phone number), so job arguments and descriptions are safe
to show on the operator console.
"""

from __future__ import annotations

from redis import Redis
from rq import Queue, Retry

from gateway.store import keys

DRAIN_INBOX_JOB = "workers.jobs.drain_inbox"


def make_queues(rq_redis: Redis) -> dict[str, Queue]:
    """One RQ Queue per name in keys.QUEUES, over a client without response decoding."""
    return {name: Queue(name, connection=rq_redis) for name in keys.QUEUES}


def enqueue_drain(queue: Queue) -> None:
    """Ask a worker to turn the waiting texts into posts."""
    queue.enqueue(
        DRAIN_INBOX_JOB,
        description="drain inbox",
        result_ttl=0,
        failure_ttl=7 * 24 * 3600,
        job_timeout=600,
        retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
    )
