"""ALERT_WEBHOOK_URL: a JSON POST when an alert starts firing and another when it ends, for
operators without Prometheus.

Who sends: every web process runs a watcher thread (`start`); every CHECK_SECONDS, the one
that takes a short lock in Redis evaluates the rules (gateway/ops/alerts.py, as the console
does) and announces what changed. Web processes rather than the workers' watchdog: a worker
cannot announce that no worker is alive, and workers never load the console
(docs/ARCHITECTURE.md). Each start and each end is sent once, however many processes check:
the announced alerts live in one Redis hash, and only the process whose HSETNX adds an alert
(or whose HDEL removes it) sends that POST.

The POST carries what /ops/api/alerts shows plus "status" ("firing" or "resolved") and, for
an end, "ended": never a phone number. It is not retried (the next change is sent anyway); a
failure is logged with the URL's host only, since its path or user part is often the secret.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlsplit

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.ops import alerts, snapshot
from gateway.runtime import Runtime
from gateway.store import keys

log = logging.getLogger(__name__)

CHECK_SECONDS = 10.0
TIMEOUT_SECONDS = 5.0  # a slow receiver delays the next check, never a request


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(url: str, payload: dict[str, object]) -> bool:
    """POST `payload` as JSON; False (logged, without the URL's secrets) if it did not land."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "kabootar-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read(1024)
        return True
    except urllib.error.HTTPError as e:
        trouble = f"HTTP {e.code}"
    except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timed out, no such host
        trouble = type(e).__name__
    log.warning("alert webhook to %s failed: %s", urlsplit(url).hostname, trouble)
    return False


def announce(redis: Redis, raised: list[alerts.Alert], rules: frozenset[str], url: str, now: float) -> None:
    """POST each alert of `raised` not yet announced, and the end of each announced alert of
    `rules` that no longer fires; of several processes doing this at once, one sends each."""
    pipe = redis.pipeline(transaction=False)
    for alert in raised:
        pipe.hsetnx(keys.ALERTS_ANNOUNCED, alert.id, json.dumps(alert.to_json()))
    pipe.hgetall(keys.ALERTS_ANNOUNCED)
    *added, announced = pipe.execute()
    for alert, new in zip(raised, added, strict=True):
        if new:
            post(url, {"status": "firing", **alert.to_json()})
    firing = {a.id for a in raised}
    for alert_id, shown in announced.items():
        if alert_id.partition(":")[0] in rules and alert_id not in firing:
            if redis.hdel(keys.ALERTS_ANNOUNCED, alert_id):
                post(url, {"status": "resolved", **json.loads(shown), "ended": _iso(now)})


class Watcher:
    """One web process's checks (`start` runs them in a thread)."""

    def __init__(self, runtime: Runtime, interval: float = CHECK_SECONDS) -> None:
        self.runtime = runtime
        self.interval = interval
        # While Redis takes no writes nothing can be claimed in it: each process then tells
        # what it sees itself, and keeps what it told (alert id -> what), to tell its end too.
        self.told_here: dict[str, str] = {}

    def check(self) -> None:
        """One round, unless another process checked within the interval: evaluate, announce."""
        redis = self.runtime.redis
        try:
            lock_ms = max(1, int(self.interval * 900))
            mine = bool(redis.set(keys.ALERTS_CHECK_LOCK, "1", nx=True, px=lock_ms))
        except ResponseError:  # READONLY, NOREPLICAS: a Redis that takes no writes
            mine = True
        if not (mine or self.told_here):
            return
        facts = snapshot.read(self.runtime)
        raised = alerts.evaluate(redis, facts)
        url, rules, now = self.runtime.config.alert_webhook_url, alerts.judged(facts), facts.window.now
        writable = bool(facts.redis["writable"])
        # Better each process telling that Redis takes no writes than none of them.
        self._tell_here(url, [] if writable else raised, {a.id for a in raised}, rules, now)
        if writable and mine:
            announce(redis, raised, rules, url, now)

    def _tell_here(
        self, url: str, raised: list[alerts.Alert], firing: set[str], rules: frozenset[str], now: float
    ) -> None:
        """Announce `raised` from this process alone, and the end of what it told that is over."""
        for alert in raised:
            if alert.id not in self.told_here:
                self.told_here[alert.id] = json.dumps(alert.to_json())
                post(url, {"status": "firing", **alert.to_json()})
        over = [i for i in self.told_here if i.partition(":")[0] in rules and i not in firing]
        for alert_id in over:
            told = json.loads(self.told_here.pop(alert_id))
            post(url, {"status": "resolved", **told, "ended": _iso(now)})


def start(runtime: Runtime, interval: float = CHECK_SECONDS) -> threading.Event:
    """Check every `interval` seconds in a daemon thread, until the returned event is set."""
    stop, watcher = threading.Event(), Watcher(runtime, interval)

    def loop() -> None:
        while not stop.wait(interval):
            try:
                watcher.check()
            except RedisError as e:  # down: the console says so; check again later
                log.warning("alert check: Redis: %s", e)
            except Exception:
                log.exception("alert check failed")  # a bug must not end the checks for good

    threading.Thread(target=loop, name="alert-webhook", daemon=True).start()
    return stop
