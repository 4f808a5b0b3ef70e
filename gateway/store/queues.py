"""The queue vocabulary: RQ queue names, the jobs Kabootar runs, and where work waits.

Every job is enqueued through `enqueue` with one of the `Job`s below, so each job's
dotted name, queue, timeout and retry policy are written once. The web app never imports
worker code: a job is named by its dotted path, "workers.jobs.<name>". Jobs carry ids
only (never a phone number), so their arguments and descriptions are safe to show on
the operator console.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry

from gateway.store import keys

# RQ queues, highest priority first: a worker takes from them in this order.
INBOUND = "kb-inbound"  # drain jobs that turn stored texts into posts
REPLIES = "kb-replies"  # answers to a texter's own command, direct messages, planning a post's SMS
FANOUT = "kb-fanout"  # bulk: a post to its followers
ALL = (INBOUND, REPLIES, FANOUT)

# Outbound SMS wait in two lanes (Redis lists of message ids, drained by send jobs):
# "replies" (answers, direct messages) goes before "fanout" (bulk).
LANES = ("replies", "fanout")
QUEUE_OF_LANE = {"replies": REPLIES, "fanout": FANOUT}

# Every job is idempotent (it redoes nothing already done), so one that raised is simply
# run again: after 1 s, 5 s, 15 s, a minute, five minutes; then it waits on the console.
RETRY = Retry(max=5, interval=[1, 5, 15, 60, 300])
FAILURE_TTL = 7 * 24 * 3600  # how long a failed job stays on the console for a retry


@dataclass(frozen=True)
class Job:
    """A kind of job: the function a worker runs, the queue it waits in, how long it may run."""

    func: str  # dotted path in workers/jobs.py
    queue: str
    timeout: int | None = None  # seconds; None: RQ's default


DRAIN_INBOX = Job("workers.jobs.drain_inbox", INBOUND, timeout=600)
FAN_OUT = Job("workers.jobs.fan_out", REPLIES, timeout=600)
FAN_OUT_BATCH = Job("workers.jobs.fan_out_batch", FANOUT, timeout=600)
FORGET_OUTBOUND = Job("workers.jobs.forget_outbound", FANOUT)


def send_sms(lane: str) -> Job:
    """The send job of an outbound lane (a fan-out send job also takes replies)."""
    return Job("workers.jobs.send_sms", QUEUE_OF_LANE[lane], timeout=300)


def make(rq_redis: Redis) -> dict[str, Queue]:
    """One RQ Queue per name in ALL, over a client without response decoding (RQ stores pickles)."""
    return {name: Queue(name, connection=rq_redis) for name in ALL}


def enqueue(
    rq_queues: Mapping[str, Queue], job: Job, *args: object, description: str, at: float | None = None
) -> None:
    """Queue `job(*args)`, now or (`at`, unix time) later through RQ's scheduler."""
    queue = rq_queues[job.queue]
    options = {"description": description, "job_timeout": job.timeout, "result_ttl": 0}
    if at is None:
        queue.enqueue(job.func, *args, **options, failure_ttl=FAILURE_TTL, retry=RETRY)
    else:
        when = datetime.fromtimestamp(at, UTC)
        queue.enqueue_at(when, job.func, *args, **options, failure_ttl=FAILURE_TTL, retry=RETRY)


def enqueue_many(
    rq_queues: Mapping[str, Queue], job: Job, calls: Sequence[tuple[tuple[object, ...], str]]
) -> None:
    """Queue many `job`s at once (one round trip): `calls` are (arguments, description)."""
    prepared = [
        Queue.prepare_data(
            job.func,
            args,
            description=description,
            timeout=job.timeout,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            retry=RETRY,
        )
        for args, description in calls
    ]
    rq_queues[job.queue].enqueue_many(prepared)


@dataclass(frozen=True)
class Place:
    """One place where work waits, as the console and its depth samples name it."""

    id: str  # stable: used in counters, JSON and metrics labels
    label: str
    kind: str  # "texts", "sms" or "jobs"
    key: str  # the Redis list that holds the waiting items
    later_key: str | None  # a zset of items due later (SMS retries, scheduled jobs)
    failed_key: str | None  # RQ's failed job registry
    in_counter: str
    out_counter: str


def places(rq_queues: Mapping[str, Queue]) -> list[Place]:
    """Every place work waits, in the order a text travels."""
    found = [Place("inbox", "texts to post", "texts", keys.INBOX, None, None, "received", "drained")]
    for lane in LANES:
        qid = f"sms-{lane}"
        later = keys.outbound_delayed(lane)
        found.append(Place(qid, f"SMS to send: {lane}", "sms", keys.outbound_lane(lane), later, None,
                           f"in:{qid}", f"out:{qid}"))  # fmt: skip
    for name, q in rq_queues.items():
        found.append(Place(name, f"jobs: {name}", "jobs", q.key, q.scheduled_job_registry.key,
                           q.failed_job_registry.key, f"in:{name}", f"out:{name}"))  # fmt: skip
    return found


def depths(redis: Redis, rq_queues: Mapping[str, Queue]) -> dict[str, int]:
    """How many items wait in each place now (one round trip), by place id."""
    found = places(rq_queues)
    pipe = redis.pipeline(transaction=False)
    for place in found:
        pipe.llen(place.key)
    return {place.id: int(n) for place, n in zip(found, pipe.execute(), strict=True)}
