"""Taking a job off the queues with no moment in which a killed worker loses it.

A worker listening on several queues pops with BLPOP in RQ; killed between that pop and
registering the job as started (a few round trips later), the job is in no queue and no
registry: gone (rq issues #1716, #2015, #2022). A fan-out job's post ids live nowhere
else, so its SMS would never go. Here a job id moves atomically (LMOVE) from its queue
into a list of the worker's own, `keys.worker_popped(name)`, and leaves it once RQ has
registered the job as started (`Worker.prepare_execution`); `recovery` requeues whatever a
dead worker's list still holds, and a live worker runs what its own list holds (a take whose
answer was lost when Redis died) before taking anything new.

Waiting: BLPOP wakes for any of its queues, BLMOVE watches one list. A worker blocks on
the first queue (the inbound one: texts becoming posts, where latency shows) for
POLL_SECONDS at a time and looks at all of them in between, so a job on another queue
waits at most that long for an idle worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, ClassVar

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job
from rq.utils import as_text

from gateway.store import keys, scripts

POLL_SECONDS = 0.2

# KEYS: the worker's popped list, then the queues in priority order.
# Returns {queue key, job id} for the first job found, moved into the popped list; or
# {"", job id} for one already there. A worker asks for a job only when it holds none, so
# an id in its list was moved there by a take whose answer never came back (Redis died
# after doing it, and RQ simply asked again): it is this worker's to run, and nobody else's.
_TAKE = """
local held = redis.call('LINDEX', KEYS[1], 0)
if held then return {'', held} end
for i = 2, #KEYS do
  local id = redis.call('LMOVE', KEYS[i], KEYS[1], 'LEFT', 'RIGHT')
  if id then return {KEYS[i], id} end
end
return false
"""


class PoppingQueue(Queue):
    """RQ's Queue whose `dequeue_any` records what it takes in `popped_key` (see `for_worker`)."""

    popped_key: ClassVar[str] = ""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The next job by queue priority (None, or DequeueTimeout after `timeout` s, if none)."""
        queue_keys = [q.key for q in queues]
        take = scripts.load(connection, _TAKE)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = take(keys=[cls.popped_key, *queue_keys])
            if found:
                queue_key, job_id = as_text(found[0]), as_text(found[1])
            else:
                if deadline is None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DequeueTimeout(timeout, queue_keys)
                moved = connection.blmove(queue_keys[0], cls.popped_key, min(POLL_SECONDS, left))  # type: ignore[arg-type]
                if moved is None:
                    continue
                queue_key, job_id = queue_keys[0], as_text(moved)
            try:
                job = (job_class or Job).fetch(job_id, connection=connection, serializer=serializer)
            except NoSuchJobError:  # deleted while queued, as RQ's own dequeue tolerates
                connection.lrem(cls.popped_key, 1, job_id)
                continue
            options: dict[str, Any] = {
                "connection": connection,
                "job_class": job_class,
                "serializer": serializer,
                "death_penalty_class": death_penalty_class,
            }
            if not queue_key:  # an orphan: the queue it came from is the job's own
                return job, cls(job.origin, **options)
            return job, cls.from_queue_key(queue_key, **options)


def for_worker(name: str) -> type[PoppingQueue]:
    """A PoppingQueue class recording into worker `name`'s popped list."""
    return type("PoppingQueue", (PoppingQueue,), {"popped_key": keys.worker_popped(name)})
