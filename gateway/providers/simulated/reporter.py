"""Webhooks a simulator posts a moment later (Twilio's status callbacks, the Android app's
reports), from a few threads per process over kept-alive connections.

A thread per message (and a new connection per post) cost the web process more than the
API calls did during a large fan-out; a heap of due times served by at most THREADS
threads, each with its own connections, does the same work. A message's next report is
scheduled only once the previous one was posted, so they stay in order. The threads end
when nothing is left to post (tests wait for them).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from gateway.providers import kept_alive

log = logging.getLogger(__name__)

# Posting threads per web process. Few of them let the API go first in a burst and the
# reports catch up after (10,000 SMS: all handed over in 14 s, all reported delivered at
# 31 s; with 4 threads 18 s and 27 s).
THREADS = 1
TIMEOUT_SECONDS = 5.0


class Poster:
    """POSTs over kept-alive connections, one per host (one thread's own): the web process
    that serves a simulator's API also posts two reports for every SMS, so a plain
    http.client call (kept_alive.py), not `requests`."""

    def __init__(self) -> None:
        self._conns = kept_alive.Connections(TIMEOUT_SECONDS)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        for retry in (False, True):  # a connection refused or lost on the way: once more, anew
            try:
                return self._conns.request("POST", url, body, headers).status
            except (kept_alive.NotSent, kept_alive.NoAnswer):
                if retry:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conns.close()


class Report(Protocol):
    """The reports still to post for one message."""

    def post_next(self, poster: Poster) -> float | None:
        """Post the next report; seconds until the one after it, or None when done."""


def post_quietly(poster: Poster, url: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Post a report, logging (never raising) a failure: the carrier's next report still
    comes, as a real provider's would, when the gateway missed one."""
    try:
        poster.post(url, body, headers)
    except Exception as e:  # a simulator thread must never take anything down with it
        log.warning("a simulator could not post a report: %s", type(e).__name__)


class Reporter:
    def __init__(self) -> None:
        self._due: list[tuple[float, int, Report]] = []
        self._ready = threading.Condition()
        self._order = itertools.count()
        self._threads = 0

    def schedule(self, delay: float, report: Report) -> None:
        with self._ready:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), report))
            self._ready.notify()
            if self._threads < THREADS:
                self._threads += 1
                threading.Thread(target=self._run, daemon=True, name="sim-reports").start()

    def _next(self) -> Report | None:
        """The next report when it is due; None (and this thread ends) when none is left."""
        with self._ready:
            while self._due:
                wait = self._due[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._ready.wait(wait)
            self._threads -= 1
            return None

    def _run(self) -> None:
        poster = Poster()
        try:
            while (report := self._next()) is not None:
                try:
                    after = report.post_next(poster)
                except Exception as e:  # a simulator thread must never take anything down with it
                    log.warning("a simulator could not post a report: %s", type(e).__name__)
                    after = None
                if after is not None:
                    self.schedule(after, report)
        finally:
            poster.close()


_reporters: dict[int, Reporter] = {}
_reporters_lock = threading.Lock()


def reporter() -> Reporter:
    """This process's reporter (gunicorn forks its workers: each needs its own threads)."""
    with _reporters_lock:
        pid = os.getpid()
        if pid not in _reporters:
            _reporters[pid] = Reporter()
        return _reporters[pid]
