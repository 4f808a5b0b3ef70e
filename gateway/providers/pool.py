"""A pool of API clients, for a provider's sender that sends from several threads at once.

Each send borrows a client and gives it back, so its HTTP session keeps the connection
alive for the next SMS, and there are never more clients than sends at once (send jobs
start new threads each time: a client per thread would pile up for as long as the worker
runs).
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Client = TypeVar("Client")


class ClientPool(Generic[Client]):
    def __init__(self, make: Callable[[], Client], close: Callable[[Client], None]) -> None:
        self._make = make
        self._close = close
        self._idle: queue.SimpleQueue[Client] = queue.SimpleQueue()

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        """An idle client (or a new one), given back when the block ends."""
        try:
            found = self._idle.get_nowait()
        except queue.Empty:
            found = self._make()
        try:
            yield found
        finally:
            self._idle.put(found)

    def close(self) -> None:
        """Close every idle client's connections."""
        while True:
            try:
                self._close(self._idle.get_nowait())
            except queue.Empty:
                return
