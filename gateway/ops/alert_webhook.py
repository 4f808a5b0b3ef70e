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
from redis.exceptions import RedisError

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


def check(runtime: Runtime, interval: float = CHECK_SECONDS) -> None:
    """One round, unless another process checked within `interval`: evaluate, announce."""
    redis = runtime.redis
    if not redis.set(keys.ALERTS_CHECK_LOCK, "1", nx=True, px=max(1, int(interval * 900))):
        return
    facts = snapshot.read(runtime)
    raised = alerts.evaluate(redis, facts)
    announce(redis, raised, alerts.judged(facts), runtime.config.alert_webhook_url, facts.window.now)


def start(runtime: Runtime, interval: float = CHECK_SECONDS) -> threading.Event:
    """Check every `interval` seconds in a daemon thread, until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                check(runtime, interval)
            except RedisError as e:  # down, or a replica: the console says so; check again later
                log.warning("alert check: Redis: %s", e)
            except Exception:
                log.exception("alert check failed")  # a bug must not end the checks for good

    threading.Thread(target=loop, name="alert-webhook", daemon=True).start()
    return stop
