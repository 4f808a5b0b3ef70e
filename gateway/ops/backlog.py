"""Where work waits: the inbox of texts, the outbound SMS lanes, and the RQ queues.

For each: how many wait, how long the oldest has waited, what came in and went out per
second over the last minute (from `gateway.stats` counters), and its depth minute by
minute over the last hour. Two round trips for all of them, whatever the data size:
lengths and heads first, then the heads' timestamps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC

from redis import Redis
from rq.job import Job
from rq.utils import utcparse

from gateway.store import keys, stats
from gateway.store.queues import Place


@dataclass(frozen=True)
class QueueFigures:
    spec: Place
    depth: int
    later: int
    failed: int
    oldest_age: float | None
    in_per_s: float | None
    out_per_s: float | None
    history: list[float | None]  # depth per minute, oldest first

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.spec.label,
            "kind": self.spec.kind,
            "depth": self.depth,
            "later": self.later,
            "failed": self.failed,
            "oldest_age": None if self.oldest_age is None else round(self.oldest_age, 1),
            "in_per_s": None if self.in_per_s is None else round(self.in_per_s, 3),
            "out_per_s": None if self.out_per_s is None else round(self.out_per_s, 3),
            "history": self.history,
        }


def _stamp_key(spec: Place, head: str) -> tuple[str, str]:
    if spec.kind == "texts":
        return keys.inbound_message(head), "at"
    if spec.kind == "sms":
        return keys.outbound_message(head), "created"
    return Job.redis_job_namespace_prefix + head, "enqueued_at"


def _as_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:  # RQ's UTC timestamps
        return utcparse(value).replace(tzinfo=UTC).timestamp()


def read(redis: Redis, queue_specs: list[Place], window: stats.Window) -> list[QueueFigures]:
    """The figures of every queue (two round trips)."""
    pipe = redis.pipeline(transaction=False)
    for spec in queue_specs:
        pipe.llen(spec.key)
        pipe.lindex(spec.key, 0)
        # ZCARD of a missing key is 0: a queue without such a set reads an unused name.
        pipe.zcard(spec.later_key or keys.PREFIX + "none")
        pipe.zcard(spec.failed_key or keys.PREFIX + "none")
    flat = pipe.execute()
    rows = [flat[i : i + 4] for i in range(0, len(flat), 4)]
    pipe = redis.pipeline(transaction=False)
    for spec, (_, head, _, _) in zip(queue_specs, rows, strict=True):
        pipe.hget(*(_stamp_key(spec, head) if head else (keys.PREFIX + "none", "none")))
    stamps = pipe.execute()
    figures = []
    for spec, (depth, _, later, failed), stamp in zip(queue_specs, rows, stamps, strict=True):
        since = _as_time(stamp)
        figures.append(
            QueueFigures(
                spec=spec,
                depth=int(depth),
                later=int(later),
                failed=int(failed),
                oldest_age=max(0.0, window.now - since) if since else None,
                in_per_s=_rate(window, spec, spec.in_counter),
                out_per_s=_rate(window, spec, spec.out_counter),
                # The last point is now, not the minute's last sample.
                history=[*window.series(f"depth:{spec.id}")[:-1], float(depth)],
            )
        )
    return figures


def _rate(window: stats.Window, spec: Place, counter: str) -> float | None:
    """Per second over the last minute; None for a job queue nothing counts (RQ keeps no
    per-queue totals; the flows that matter are the texts' and the SMS')."""
    if spec.kind == "jobs" and not window.seen(counter):
        return None
    return window.per_second(counter)


_last_sample: dict[int, float] = {}
SAMPLE_EVERY_SECONDS = 10.0


def sample(redis: Redis, figures: list[QueueFigures], now: float | None = None) -> None:
    """Note the depths for the sparklines, at most every 10 s per process (whoever reads
    the figures: the console, /metrics, a worker's watchdog)."""
    now = time.time() if now is None else now
    if now - _last_sample.get(id(redis), 0.0) < SAMPLE_EVERY_SECONDS:
        return
    _last_sample[id(redis)] = now
    stats.sample_depths(redis, {f.spec.id: f.depth for f in figures}, now)
