"""Failed jobs: what failed and why (phone numbers masked), retry or discard them.

Jobs land in RQ's FailedJobRegistry of their queue once their retries are spent. Kabootar's
jobs carry ids only and are idempotent (a drain or send job redoes nothing already done),
so retrying one is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from gateway.phones import redact

SHOWN = 20
_ERRORS: dict[tuple[str, str], str] = {}  # (job id, ended at) -> last line: a failure never changes


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    func: str
    description: str
    failed_at: float | None
    error: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "queue": self.queue,
            "func": self.func,
            "description": self.description,
            "failed_at": self.failed_at,
            "error": self.error,
        }


def last_line(text: str, limit: int = 300) -> str:
    """The last non-empty line of a traceback, phone numbers masked, cut to `limit`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = redact(lines[-1]) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_of(job: Job) -> str:
    """The last line of the job's error, numbers masked (read once per failure)."""
    ended = job.ended_at.isoformat() if job.ended_at else ""
    cached = _ERRORS.get((job.id, ended))
    if cached is not None:
        return cached
    result = job.latest_result()
    error = last_line(result.exc_string or "") if result and result.exc_string else ""
    if len(_ERRORS) > 1000:
        _ERRORS.clear()
    _ERRORS[(job.id, ended)] = error
    return error


def _func(job: Job) -> str:
    try:
        return redact(job.func_name or "")
    except Exception:  # a job whose data cannot be read is still worth listing
        return "?"


def _stamp(when: datetime | None) -> float | None:
    return round(when.timestamp(), 3) if when else None


def listed(rq_queues: dict[str, Queue], limit: int = SHOWN) -> list[FailedJob]:
    """The most recent failed jobs across the queues, newest first, at most `limit`."""
    found: list[FailedJob] = []
    for name, queue in rq_queues.items():
        registry = queue.failed_job_registry
        ids = registry.get_job_ids(0, limit - 1, desc=True)
        for job in Job.fetch_many(ids, connection=queue.connection):
            if job is None:
                continue
            found.append(
                FailedJob(
                    id=job.id,
                    queue=name,
                    func=_func(job),
                    description=redact(job.description or ""),
                    failed_at=_stamp(job.ended_at),
                    error=error_of(job),
                )
            )
    found.sort(key=lambda j: j.failed_at or 0.0, reverse=True)
    return found[:limit]


def _find(rq_queues: dict[str, Queue], job_id: str) -> tuple[Queue, Job] | None:
    for queue in rq_queues.values():
        if job_id in queue.failed_job_registry:
            try:
                return queue, Job.fetch(job_id, connection=queue.connection)
            except NoSuchJobError:
                queue.failed_job_registry.remove(job_id)
                return None
    return None


def retry(rq_queues: dict[str, Queue], job_id: str) -> bool:
    """Put a failed job back on its queue; False when no such failed job."""
    found = _find(rq_queues, job_id)
    if found is None:
        return False
    queue, job = found
    try:
        queue.failed_job_registry.requeue(job)
    except InvalidJobOperation:  # someone else retried it in the meantime
        return False
    return True


def discard(rq_queues: dict[str, Queue], job_id: str) -> bool:
    """Delete a failed job for good; False when no such failed job."""
    found = _find(rq_queues, job_id)
    if found is None:
        return False
    queue, job = found
    queue.failed_job_registry.remove(job, delete_job=True)
    return True


def count(redis: Redis, rq_queues: dict[str, Queue]) -> int:
    """How many failed jobs wait, over all queues (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for q in rq_queues.values():
        pipe.zcard(q.failed_job_registry.key)
    return sum(pipe.execute())
