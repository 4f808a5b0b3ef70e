"""Bulk actions on failed jobs, chosen by a filter rather than one by one.

An operator sets a filter (queue, words in the error, how recent), sees a dry run — how
many jobs it selects, per queue — and only then confirms; the action is written to the
audit log (ops/audit.py) with the filter and both counts. A filter is checked before any
Redis work, and a selection stops at MAX_SELECTED jobs (the newest), so no click can
start an unbounded scan.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from rq import Queue
from rq.job import Job

from gateway.ops import failed

MAX_SELECTED = 10_000
MAX_ERROR_WORDS = 100
WITHIN_MINUTES = (10, 60, 24 * 60, 7 * 24 * 60)  # the choices the form offers
ACTIONS = {"retry": "retry failed jobs", "discard": "discard failed jobs"}
_FETCH = 500  # jobs read from Redis at a time


class BadFilter(ValueError):
    """A filter the form could not have sent: the message says what is wrong."""


@dataclass(frozen=True)
class JobFilter:
    queue: str = ""  # "" for every queue
    error: str = ""  # words the error's last line contains ("" for any error)
    within: int = 0  # failed in the last this many minutes (0 for any time)

    @classmethod
    def parse(cls, form: Mapping[str, str], queue_names: list[str]) -> JobFilter:
        queue = form.get("queue", "").strip()
        if queue and queue not in queue_names:
            raise BadFilter(f"no queue named {queue[:40]!r}: choose one of {', '.join(queue_names)}")
        error = " ".join(form.get("error", "").split())
        if len(error) > MAX_ERROR_WORDS:
            raise BadFilter(f"the error words are longer than {MAX_ERROR_WORDS} characters")
        raw_within = form.get("within", "").strip() or "0"
        if not raw_within.isdigit() or (int(raw_within) and int(raw_within) not in WITHIN_MINUTES):
            raise BadFilter("choose how recent from the list")
        return cls(queue, error, int(raw_within))

    def shown(self) -> dict[str, str]:
        """The filter as the audit log and the pages show it."""
        return {
            "queue": self.queue or "any",
            "error": self.error or "any",
            "within": f"{self.within} min" if self.within else "any time",
        }

    def as_form(self) -> dict[str, str]:
        return {"queue": self.queue, "error": self.error, "within": str(self.within or "")}


@dataclass(frozen=True)
class Selection:
    jobs: list[tuple[str, str]]  # (queue name, job id), newest first per queue
    per_queue: dict[str, int]
    capped: bool  # more matched than MAX_SELECTED


def select(rq_queues: dict[str, Queue], chosen: JobFilter) -> Selection:
    """The failed jobs the filter selects."""
    since = time.time() - chosen.within * 60 if chosen.within else None
    words = chosen.error.casefold()
    jobs: list[tuple[str, str]] = []
    capped = False
    for name, queue in rq_queues.items():
        if chosen.queue and name != chosen.queue:
            continue
        ids = queue.failed_job_registry.get_job_ids(desc=True)
        for start in range(0, len(ids), _FETCH):
            for job in Job.fetch_many(ids[start : start + _FETCH], connection=queue.connection):
                if job is None or not _matches(job, since, words):
                    continue
                if len(jobs) == MAX_SELECTED:
                    capped = True
                    break
                jobs.append((name, job.id))
            if capped:
                break
    return Selection(jobs, dict(Counter(name for name, _ in jobs)), capped)


def _matches(job: Job, since: float | None, words: str) -> bool:
    if since is not None and (job.ended_at is None or job.ended_at.timestamp() < since):
        return False
    return not words or words in failed.error_of(job).casefold()


def apply(rq_queues: dict[str, Queue], action: str, selection: Selection) -> int:
    """Retry or discard the selected jobs; returns how many were (a job retried or discarded
    by someone else meanwhile is passed over)."""
    act = failed.retry if action == "retry" else failed.discard
    return sum(act(rq_queues, job_id) for _, job_id in selection.jobs)
