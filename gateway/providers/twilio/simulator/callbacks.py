"""The simulator's status callbacks: `sent`, then the final status, posted to the
StatusCallback URL a moment after the API took the SMS, signed as Twilio signs them.

Twilio's callbacks cost Twilio nothing of ours; the simulator's share the web process
with the API it serves, so they are posted from a heap of due times by at most
CALLBACK_THREADS threads per process, each over kept-alive connections.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis

from gateway.providers.twilio.simulator import store
from gateway.providers.twilio.webhooks import sign_url

log = logging.getLogger(__name__)

SENT_AFTER_SECONDS = 0.05  # when the simulated carrier reports `sent`, then `delivered`
DELIVERED_AFTER_SECONDS = 0.2
# Callback senders per web process. Few of them let the API go first in a burst and the
# callbacks catch up after (10,000 SMS: all handed over in 14 s, all reported delivered at
# 31 s; with 4 threads 18 s and 27 s).
CALLBACK_THREADS = 1
CALLBACK_TIMEOUT_SECONDS = 5.0


class _Poster:
    """Form POSTs over kept-alive connections, one per host (one thread's own).

    Plain http.client: requests costs several times its CPU per call, and the web
    process that serves the API also posts two callbacks for every SMS.
    """

    def __init__(self) -> None:
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def post(self, url: str, form: Mapping[str, str], headers: Mapping[str, str]) -> int:
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = urllib.parse.urlencode(form)
        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        key = (parts.scheme, parts.netloc)
        for retry in (False, True):  # a kept-alive connection the server closed: once more on a new one
            conn = self._conns.get(key)
            if conn is None:
                kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = self._conns[key] = kind(parts.netloc, timeout=CALLBACK_TIMEOUT_SECONDS)
            try:
                conn.request("POST", path, body, sent)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                del self._conns[key]
                if retry:
                    raise
                continue
            if response.will_close:
                conn.close()
                del self._conns[key]
            return response.status
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


@dataclass
class Report:
    """The status callbacks still to post for one message, in order (`sent`, then the final one)."""

    redis: Redis
    token: str
    url: str
    form: dict[str, str]
    steps: list[tuple[str, int | None]]

    def post_next(self, session: _Poster) -> bool:
        """Post the next status, signed like Twilio; True while more are to come."""
        status, code = self.steps.pop(0)
        try:
            store.set_status(self.redis, self.form["MessageSid"], status)
            data = dict(self.form, MessageStatus=status, SmsStatus=status)
            if code:
                data["ErrorCode"] = str(code)
            signature = sign_url(self.token, self.url, data)
            session.post(self.url, data, {"X-Twilio-Signature": signature})
        except Exception as e:  # a simulator thread must never take anything down with it
            log.warning("simulator could not deliver a status callback: %s", type(e).__name__)
        return bool(self.steps)


class _Reporter:
    """Posts status callbacks when they are due, from a few threads per process.

    A thread per message (and a new connection per callback) cost the web process more
    than the API calls did during a large fan-out; a heap of due times served by at most
    CALLBACK_THREADS threads, each with its own kept-alive session, does the same work.
    A message's next status is scheduled only once the previous one was posted, so they
    stay in order. The threads end when nothing is left to post (tests wait for them).
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Report]] = []
        self._ready = threading.Condition()
        self._order = itertools.count()
        self._threads = 0

    def schedule(self, delay: float, report: Report) -> None:
        with self._ready:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), report))
            self._ready.notify()
            if self._threads < CALLBACK_THREADS:
                self._threads += 1
                threading.Thread(target=self._run, daemon=True, name="sim-callbacks").start()

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
        session = _Poster()
        try:
            while (report := self._next()) is not None:
                if report.post_next(session):
                    self.schedule(DELIVERED_AFTER_SECONDS, report)
        finally:
            session.close()


_reporters: dict[int, _Reporter] = {}
_reporters_lock = threading.Lock()


def reporter() -> _Reporter:
    """This process's reporter (gunicorn forks its workers: each needs its own threads)."""
    with _reporters_lock:
        pid = os.getpid()
        if pid not in _reporters:
            _reporters[pid] = _Reporter()
        return _reporters[pid]
