"""Workers: RQ's own registry of workers, joined with Kabootar's watchdog heartbeats.

A worker counts as alive when its watchdog beat within `heartbeats.ALIVE_SECONDS` (what
/readyz uses too): RQ's heartbeat only moves between jobs, the watchdog's every second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import cast

from redis import Redis
from rq import Worker
from rq.job import Job
from rq.worker import BaseWorker

from gateway.phones import redact
from gateway.store import keys
from gateway.store.heartbeats import ALIVE_SECONDS


@dataclass(frozen=True)
class WorkerRow:
    name: str
    host: str
    state: str
    current_job: str
    last_heartbeat: float | None
    successful: int
    failed: int
    alive: bool

    def to_json(self, now: float) -> dict[str, object]:
        return {
            "name": self.name,
            "host": self.host,
            "state": self.state,
            "current_job": self.current_job,
            "last_heartbeat": self.last_heartbeat,
            "heartbeat_age": None if self.last_heartbeat is None else round(now - self.last_heartbeat, 1),
            "successful": self.successful,
            "failed": self.failed,
            "alive": self.alive,
        }


def _current_job(worker: BaseWorker, rq_redis: Redis) -> str:
    job_id = worker.get_current_job_id()
    if not job_id:
        return ""
    job = Job.fetch_many([job_id], connection=rq_redis)[0]
    return redact(job.description or job_id) if job else job_id


def read(redis: Redis, rq_redis: Redis, now: float) -> list[WorkerRow]:
    """Every worker RQ knows of or whose watchdog beat in the last hour, alive ones first."""
    found = redis.zrangebyscore(keys.WORKER_HEARTBEAT, now - 3600, "+inf", withscores=True)
    beats: dict[str, float] = {
        str(name): float(score) for name, score in cast(list[tuple[str, float]], found)
    }
    rows = []
    for worker in Worker.all(connection=rq_redis):
        rq_beat = worker.last_heartbeat.replace(tzinfo=UTC).timestamp() if worker.last_heartbeat else None
        beat = max(filter(None, (rq_beat, beats.pop(worker.name, None))), default=None)
        state = worker.get_state()
        rows.append(
            WorkerRow(
                name=worker.name,
                host=worker.hostname or "",
                state=state,
                current_job=_current_job(worker, rq_redis) if state == "busy" else "",
                last_heartbeat=beat,
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
                alive=beat is not None and now - beat <= ALIVE_SECONDS,
            )
        )
    for name, beat in beats.items():  # a watchdog whose worker RQ no longer lists
        host = name.rsplit(".", 1)[0]
        alive = now - beat <= ALIVE_SECONDS
        rows.append(WorkerRow(name, host, "starting" if alive else "gone", "", beat, 0, 0, alive))
    rows.sort(key=lambda r: (not r.alive, r.name))
    return rows
