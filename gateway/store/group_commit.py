"""Group commit: many threads' writes sent to Redis together, so they share one fsync.

With `appendfsync always`, Redis fsyncs its append-only file once per turn of its event
loop, for every write in that turn, and answers none of them before the fsync. A webhook
that writes alone pays a whole fsync (about a millisecond on an ordinary disk) and holds
its thread meanwhile. So the threads of a web process hand their items to whichever of
them is committing, in a queue: the first to arrive when no batch is in flight becomes
the leader and sends every queued item in one pipelined round trip; the others wait for
its answer. Items arriving during that round trip form the next batch, led by the first
of them. No item is answered before the batch that holds it has returned from Redis, so
a caller still learns only of durable writes (whatever durability the batch waits for).

No background thread: a gunicorn or Granian worker forks after the app is built, and a
thread started before the fork would not exist in the child.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class _Waiter(Generic[Item, Outcome]):
    item: Item
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # set (before `woken`) when this waiter is to commit the next batch
    outcome: Outcome | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Item, Outcome]):
    """Calls `commit(items)` (one outcome per item, in order) for batches of the items
    that threads `submit` while another batch is in flight."""

    def __init__(self, commit: Callable[[Sequence[Item]], Sequence[Outcome]]):
        self._commit = commit
        self._lock = threading.Lock()
        self._queued: list[_Waiter[Item, Outcome]] = []
        self._in_flight = False

    def submit(self, item: Item) -> Outcome:
        """`item`'s outcome once its batch is committed; raises what the commit raised."""
        me: _Waiter[Item, Outcome] = _Waiter(item)
        with self._lock:
            self._queued.append(me)
            if not self._in_flight:
                self._in_flight = me.leads = True
        if not me.leads:
            me.woken.wait()  # for our batch's answer, or to lead the next batch
        if me.leads:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.outcome  # type: ignore[return-value]  # set with no error: an Outcome

    def _lead(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
        try:
            outcomes = self._commit([w.item for w in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"commit gave {len(outcomes)} outcomes for {len(batch)} items")
            for waiter, outcome in zip(batch, outcomes, strict=True):
                waiter.outcome = outcome
        except BaseException as e:  # every waiter of the batch learns it, and raises it
            for waiter in batch:
                waiter.error = e
        finally:
            with self._lock:
                successor = self._queued[0] if self._queued else None
                if successor is None:
                    self._in_flight = False
                else:
                    successor.leads = True
            for waiter in batch:
                waiter.woken.set()
            if successor is not None:
                successor.woken.set()
