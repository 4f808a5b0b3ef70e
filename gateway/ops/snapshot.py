"""Everything the console shows, as one JSON-ready dict: the page, /ops/api/health and
/metrics all read it. About a dozen small Redis round trips, none of which grows with
the number of posts or texters stored, and one to each Sentinel (all at once).
"""

from __future__ import annotations

import time
from typing import Any

from gateway.microblog import moderation
from gateway.ops import alerts, backlog, delivery, failed, providers, redis_health, workers
from gateway.runtime import Runtime
from gateway.store import stats
from gateway.store.queues import places

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


def read(runtime: Runtime, now: float | None = None, sentinels: bool = True) -> alerts.Facts:
    """Read the figures the console shows and the alert rules judge."""
    redis, rq_queues = runtime.redis, runtime.queues
    now = time.time() if now is None else now
    # First: it records a new primary. Sentinels only for the page and its JSON: /metrics may
    # be public (METRICS_PUBLIC), and must not let anyone make us call on the Sentinels.
    redis_figures = redis_health.read(runtime, now, sentinels=sentinels)
    window = stats.Window.read(redis, 60, now)
    queues = backlog.read(redis, places(rq_queues), window)
    if redis_figures["writable"]:  # a replica still shows every figure, it only keeps no sample
        backlog.sample(redis, queues, now)
    worker_rows = workers.read(redis, runtime.rq_redis, now)
    sms = [q for q in queues if q.spec.kind == "sms"]
    limit = runtime.config.total_mps
    outbound = delivery.read(redis, sum(q.depth for q in sms), sum(q.later for q in sms), window, limit)
    channels = providers.read(redis, runtime.config, window, outbound.raw)
    return alerts.Facts(redis_figures, queues, worker_rows, channels, outbound, window, sentinels)


def take(runtime: Runtime, now: float | None = None, detail: bool = True) -> dict[str, Any]:
    """The console's figures. `detail` adds failed jobs, moderation lists and the Sentinels'
    views (the page's)."""
    redis, rq_queues = runtime.redis, runtime.queues
    f = read(runtime, now, sentinels=detail)
    now = f.window.now
    raised = alerts.evaluate(redis, f)
    found: dict[str, Any] = {
        "at": round(now, 3),
        "ok": not raised,
        "alerts": [a.to_json() for a in raised],
        "queues": {q.spec.id: {**q.to_json(), "late": alerts.late(q)} for q in f.queues},
        "workers": {
            "alive": sum(r.alive for r in f.workers),
            "list": [r.to_json(now) for r in f.workers],
        },
        "pipeline": _pipeline(f.window),
        "outbound": f.outbound.to_json(),
        "providers": {p.name: p.to_json() for p in f.providers},
        "redis": f.redis,
        "failed_jobs": {"count": sum(q.failed for q in f.queues)},
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
