"""Bulk actions chosen by a filter rather than one by one: failed jobs retried or discarded,
failed SMS sent again.

An operator sets a filter — for jobs: queue, words in the error, how recent; for SMS: the
message history's own filters (provider, outcome, texter, text, time range) — sees a dry
run (how many it selects, and for SMS how many recipients and how many of them would be
skipped because they no longer receive SMS) and only then confirms; the action is written
to the audit log (ops/audit.py) with the filter and both counts. A filter is checked
before any Redis work, and a selection stops at MAX_SELECTED (the newest), so no click
can start an unbounded scan.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis
from rq import Queue
from rq.job import Job

from gateway.ops import export, failed, filters
from gateway.outbox import requeue

MAX_SELECTED = 10_000
MAX_SCANNED = 50_000  # failed jobs one dry run or confirm reads at most, matching or not
MAX_ERROR_WORDS = 100
WITHIN_MINUTES = (10, 60, 24 * 60, 7 * 24 * 60)  # the choices the form offers
ACTIONS = {"retry": "retry failed jobs", "discard": "discard failed jobs"}
SMS_ACTION = "send failed SMS again"
SMS_OUTCOMES = ("failed", "undelivered")  # what may be sent again
_FETCH = 500  # jobs read from Redis at a time


@dataclass(frozen=True)
class JobFilter:
    queue: str = ""  # "" for every queue
    error: str = ""  # words the error's last line contains ("" for any error)
    within: int = 0  # failed in the last this many minutes (0 for any time)

    @classmethod
    def parse(cls, form: Mapping[str, str], queue_names: list[str]) -> JobFilter:
        queue = form.get("queue", "").strip()
        if queue and queue not in queue_names:
            raise filters.BadFilter(f"no queue named {queue[:40]!r}: choose one of {', '.join(queue_names)}")
        error = " ".join(form.get("error", "").split())
        if len(error) > MAX_ERROR_WORDS:
            raise filters.BadFilter(f"the error words are longer than {MAX_ERROR_WORDS} characters")
        raw_within = form.get("within", "").strip() or "0"
        if not raw_within.isdigit() or (int(raw_within) and int(raw_within) not in WITHIN_MINUTES):
            raise filters.BadFilter("choose how recent from the list")
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
    scanned = 0
    for name, queue in rq_queues.items():
        if chosen.queue and name != chosen.queue:
            continue
        start = 0
        # A page of ids at a time, newest first: a registry of a million failures is never
        # read whole, and a filter that matches little stops after MAX_SCANNED.
        while not capped and (
            ids := queue.failed_job_registry.get_job_ids(start, start + _FETCH - 1, desc=True)
        ):
            start += len(ids)
            scanned += len(ids)
            for job in Job.fetch_many(ids, connection=queue.connection):
                if job is None or not _matches(job, since, words):
                    continue
                if len(jobs) == MAX_SELECTED:
                    capped = True
                    break
                jobs.append((name, job.id))
            capped = capped or scanned >= MAX_SCANNED
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


@dataclass(frozen=True)
class SmsSelection:
    sms: list[requeue.Failed]  # newest first
    recipients: int  # of those SMS, who receive SMS now
    skipped: int  # SMS whose recipient stopped, paused or was forgotten since
    capped: bool


def sms_filter(args: Mapping[str, str], days: int) -> filters.Filters:
    """The history's filters for failed SMS: `direction` is always "out", `outcome` one of
    SMS_OUTCOMES ("failed" when not given)."""
    outcome = args.get("outcome", "") or "failed"
    if outcome not in SMS_OUTCOMES:
        raise filters.BadFilter(f"outcome: one of {', '.join(SMS_OUTCOMES)} (only those are sent again)")
    return filters.parse({**args, "direction": "out", "outcome": outcome, "cursor": ""}, days)


def sms_shown(chosen: filters.Filters) -> dict[str, str]:
    shown = {k: v for k, v in chosen.query().items() if k not in ("direction", "since", "until")}
    return {**shown, "from": chosen.query()["since"], "to": chosen.query()["until"]}


def select_sms(redis: Redis, chosen: filters.Filters) -> SmsSelection:
    """The failed SMS the filter selects, newest first, and whom they would reach."""
    found: list[requeue.Failed] = []
    capped = False
    for row, _ in export.rows(redis, chosen, cap=MAX_SELECTED + 1):
        if row is None:
            break
        if len(found) == MAX_SELECTED:
            capped = True
            break
        found.append(requeue.Failed(row.id.removeprefix("out-"), (row.record or {}).get("r", "")))
    receiving = requeue.receiving(redis, sorted({sms.recipient for sms in found}))
    skipped = sum(1 for sms in found if not receiving[sms.recipient])
    return SmsSelection(found, sum(receiving.values()), skipped, capped)


def apply_sms(redis: Redis, selection: SmsSelection) -> tuple[int, int]:
    """Send the selected SMS again; returns (queued again, skipped because their recipient
    does not receive SMS now). Others were no longer failed (sent again already)."""
    outcomes = requeue.retry_failed(redis, selection.sms)
    return outcomes.count(requeue.RETRIED), outcomes.count(requeue.SKIPPED)
