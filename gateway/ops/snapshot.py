"""Everything the console shows, as one JSON-ready dict: the page, /ops/api/health and
/metrics all read it. About a dozen small Redis round trips, none of which grows with
the number of posts or texters stored, and one to each Sentinel (all at once).
"""

from __future__ import annotations

import time
from typing import Any

from gateway.microblog import moderation
from gateway.ops import backlog, delivery, failed, providers, redis_health, workers
from gateway.ops.present import fmt_ago
from gateway.runtime import Runtime
from gateway.store import stats
from gateway.store.queues import places

# How long the oldest item may wait before the console turns red, by kind of queue.
OLDEST_ALERT_SECONDS = {"texts": 60.0, "sms": 900.0, "jobs": 120.0}
LATENCY_MINUTES = 5
PERCENTILES = (0.5, 0.95, 0.99)


def _latency(window: stats.Window, name: str) -> dict[str, float | None]:
    counts = window.histogram(name, LATENCY_MINUTES)
    found: dict[str, float | None] = {"count": round(sum(counts))}
    for q in PERCENTILES:
        value = stats.quantile(q, counts)
        found[f"p{round(q * 100)}"] = None if value is None else round(value, 3)
    return found


def _pipeline(window: stats.Window) -> dict[str, Any]:
    per_minute = {name: round(window.last_minute(name), 1) for name in ("received", "posts", "rejected")}
    return {
        "received_per_min": per_minute["received"],
        "posts_per_min": per_minute["posts"],
        "rejected_per_min": per_minute["rejected"],
        "received": window.total("received"),
        "posts": window.total("posts"),
        "rejected": window.total("rejected"),
        "malformed": window.total("malformed"),
        "duplicates": window.total("duplicate"),
        "blocked": window.total("blocked"),
        "throttled": window.total("throttled"),
        "latency": {name: _latency(window, name) for name in stats.LATENCIES},
    }


def _late(q: backlog.QueueFigures) -> bool:
    """Whether the oldest item of a queue has waited longer than its kind allows."""
    return q.oldest_age is not None and q.oldest_age > OLDEST_ALERT_SECONDS[q.spec.kind]


def _alerts(
    queues: list[backlog.QueueFigures],
    rows: list[workers.WorkerRow],
    channels: list[providers.ProviderFigures],
    now: float,
) -> list[str]:
    alerts = []
    if not any(r.alive for r in rows):
        alerts.append("No worker is alive: texts are stored, but none become posts and no SMS goes out.")
    for p in channels:
        if p.state != "up":
            since = f" (since {fmt_ago(p.trouble_since, now)})" if p.trouble_since else ""
            alerts.append(f"SMS provider {p.name}: {providers.STATES_MEANING[p.state]}{since}.")
    for q in queues:
        limit = OLDEST_ALERT_SECONDS[q.spec.kind]
        if _late(q) and q.oldest_age is not None:
            alerts.append(
                f"{q.spec.label}: the oldest has waited {round(q.oldest_age)} s (limit {round(limit)} s)."
            )
    return alerts


def take(runtime: Runtime, now: float | None = None, detail: bool = True) -> dict[str, Any]:
    """The console's figures. `detail` adds failed jobs, moderation lists and the Sentinels'
    views (the page's)."""
    redis, rq_queues = runtime.redis, runtime.queues
    now = time.time() if now is None else now
    # First: it records a new primary. Sentinels only for the page and its JSON: /metrics may
    # be public (METRICS_PUBLIC), and must not let anyone make us call on the Sentinels.
    redis_figures = redis_health.read(runtime, now, sentinels=detail)
    window = stats.Window.read(redis, 60, now)
    queues = backlog.read(redis, places(rq_queues), window)
    if redis_figures["writable"]:  # a replica still shows every figure, it only keeps no sample
        backlog.sample(redis, queues, now)
    worker_rows = workers.read(redis, runtime.rq_redis, now)
    sms = [q for q in queues if q.spec.kind == "sms"]
    limit = runtime.config.total_mps
    outbound = delivery.read(redis, sum(q.depth for q in sms), sum(q.later for q in sms), window, limit)
    channels = providers.read(redis, runtime.config, window, outbound.raw)
    alerts = redis_health.alerts(redis_figures) + _alerts(queues, worker_rows, channels, now)
    found: dict[str, Any] = {
        "at": round(now, 3),
        "ok": not alerts,
        "alerts": alerts,
        "queues": {q.spec.id: {**q.to_json(), "late": _late(q)} for q in queues},
        "workers": {
            "alive": sum(r.alive for r in worker_rows),
            "list": [r.to_json(now) for r in worker_rows],
        },
        "pipeline": _pipeline(window),
        "outbound": outbound.to_json(),
        "providers": {p.name: p.to_json() for p in channels},
        "redis": redis_figures,
        "failed_jobs": {"count": sum(q.failed for q in queues)},
    }
    if detail:
        found["failed_jobs"]["jobs"] = [j.to_json() for j in failed.listed(rq_queues)]
        found["moderation"] = {
            "blocked": [
                {"id": b.key, "handle": b.handle, "at": b.at, "hides_posts": b.hides_posts}
                for b in moderation.blocks(redis)
            ],
            "recent": moderation.recent_actions(redis),
        }
    return found
