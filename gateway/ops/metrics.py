"""GET /metrics: the console's figures in Prometheus's text format.

A custom collector reads Redis at scrape time, so every gunicorn process answers with
the same numbers (nothing is counted in process memory: no multiprocess directory to
manage). Labels are queue ids, outcomes, provider error codes and stage names — never a
phone number or a handle.

Who may read it: the scraper with `Authorization: Bearer <METRICS_TOKEN>` (Prometheus's
`authorization` / `bearer_token`), an operator logged in to the console, or anyone when
METRICS_PUBLIC=1. The scraper's token is its own, not an operator's password: no failed
operator login anywhere can slow or stop the scrape, and its check touches no Redis.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.ops import alerts, auth, delivery, snapshot
from gateway.runtime import Runtime
from gateway.store import stats

bp = Blueprint("metrics", __name__)


class KabootarCollector(Collector):
    """Turns one snapshot of the console's figures into metric families."""

    def __init__(self, figures: dict[str, Any], totals: dict[str, float], outcomes: dict[str, str]) -> None:
        self.figures = figures
        self.totals = totals
        self.outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._pipeline()
        yield from self._sms()
        yield from self._latency()
        yield from self._redis()
        yield from self._providers()
        alive = GaugeMetricFamily("kabootar_workers_alive", "Workers whose heartbeat is recent")
        alive.add_metric([], self.figures["workers"]["alive"])
        yield alive

    def _queues(self) -> Iterator[Metric]:
        gauges = {
            "depth": GaugeMetricFamily("kabootar_queue_depth", "Items waiting in a queue", labels=["queue"]),
            "oldest_age": GaugeMetricFamily(
                "kabootar_queue_oldest_age_seconds",
                "How long the oldest waiting item has waited",
                labels=["queue"],
            ),
            "later": GaugeMetricFamily(
                "kabootar_queue_later", "Items due later (SMS retries, scheduled jobs)", labels=["queue"]
            ),
            "failed": GaugeMetricFamily(
                "kabootar_failed_jobs", "Failed jobs kept for retry", labels=["queue"]
            ),
        }
        limit = GaugeMetricFamily(
            "kabootar_queue_oldest_age_limit_seconds",
            "How long the oldest item may wait before the QueueTooOld alert",
            labels=["queue"],
        )
        for qid, q in self.figures["queues"].items():
            for field, family in gauges.items():
                family.add_metric([qid], q[field] or 0)
            limit.add_metric([qid], alerts.OLDEST_ALERT_SECONDS[q["kind"]])
        yield from (*gauges.values(), limit)

    def _pipeline(self) -> Iterator[Metric]:
        def counter(name: str, doc: str, total: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], self.totals.get(total, 0.0))
            return family

        yield counter("kabootar_texts_received", "Texts stored from the webhook", "received")
        yield counter(
            "kabootar_texts_duplicate", "Repeated deliveries of a text (same message id)", "duplicate"
        )
        yield counter("kabootar_texts_blocked", "Texts from blocked handles (no post)", "blocked")
        yield counter("kabootar_texts_throttled", "Texts held back by SENDER_POSTS_PER_MINUTE", "throttled")
        yield counter("kabootar_posts", "Posts made from texts", "posts")
        refused = CounterMetricFamily("kabootar_webhooks_refused", "Webhooks refused", labels=["reason"])
        refused.add_metric(["signature"], self.totals.get("rejected", 0.0))
        refused.add_metric(["malformed"], self.totals.get("malformed", 0.0))
        yield refused

    def _sms(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kabootar_sms",
            "SMS outcomes by provider, status and the provider's error code",
            labels=["provider", "outcome", "error_code"],
        )
        plain, providers = delivery.by_provider(self.outcomes)
        for field, total in sorted(plain.items()):
            status, _, code = field.partition(":")
            for provider, counts in sorted(providers.items()):
                if field in counts:
                    family.add_metric([provider, status, code], float(counts[field]))
            # Counted before providers were told apart, or by no provider (never confirmed).
            unattributed = total - sum(counts.get(field, 0) for counts in providers.values())
            if unattributed:
                family.add_metric(["", status, code], float(unattributed))
        yield family
        waiting = GaugeMetricFamily("kabootar_sms_waiting", "SMS queued and not yet handed to a provider")
        out = self.figures["outbound"]
        waiting.add_metric([], out["waiting"] + out["retry_later"])
        yield waiting

    def _providers(self) -> Iterator[Metric]:
        """What the ProviderFailing and SendRatePinned rules read, by provider that is on."""
        up = GaugeMetricFamily(
            "kabootar_provider_up",
            "1 while a provider is up (not failing, unreachable or down)",
            labels=["provider"],
        )
        limit = GaugeMetricFamily(
            "kabootar_provider_send_limit_segments_per_second",
            "The SMS segments per second a provider may be sent (SMS_MPS; 0: no limit)",
            labels=["provider"],
        )
        segments = CounterMetricFamily(
            "kabootar_sms_segments", "SMS segments providers took, by provider", labels=["provider"]
        )
        for name, p in self.figures["providers"].items():
            up.add_metric([name], float(p["state"] == "up"))
            limit.add_metric([name], max(0.0, p["limit"]))
            segments.add_metric([name], self.totals.get(f"sms:segments@{name}", 0.0))
        yield from (up, limit, segments)

    def _latency(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "kabootar_latency_seconds",
            "Webhook to post, and post to SMS accepted by the provider",
            labels=["stage"],
        )
        for name in stats.LATENCIES:
            cumulative, buckets = 0.0, []
            for i, bound in enumerate(stats.LATENCY_BOUNDS):
                cumulative += self.totals.get(f"lat:{name}:{i}", 0.0)
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", self.totals.get(f"lat:{name}:n", 0.0)))
            family.add_metric([name], buckets, sum_value=self.totals.get(f"lat:{name}:sum", 0.0))
        yield family

    def _redis(self) -> Iterator[Metric]:
        found = self.figures["redis"]
        writable = GaugeMetricFamily(
            "kabootar_redis_writable", "1 while the Redis this app reaches takes writes"
        )
        writable.add_metric([], float(found["writable"]))
        yield writable
        lag = GaugeMetricFamily(
            "kabootar_redis_replica_lag_seconds", "Since a replica last confirmed", labels=["replica"]
        )
        behind = GaugeMetricFamily(
            "kabootar_redis_replica_behind_bytes",
            "Replication a replica has not confirmed",
            labels=["replica"],
        )
        for r in found["replicas"]:
            lag.add_metric([r["address"]], r["lag"])
            behind.add_metric([r["address"]], r["behind"])
        yield from (lag, behind)
        if change := found["last_change"]:
            at = GaugeMetricFamily(
                "kabootar_redis_primary_changed_timestamp_seconds", "Last change of primary"
            )
            at.add_metric([], change["at"])
            down = GaugeMetricFamily(
                "kabootar_redis_primary_change_down_seconds", "How long writes failed around it"
            )
            down.add_metric([], change["down_for"])
            yield from (at, down)


def exposition() -> bytes:
    """The metrics text for this app's Redis, as of now."""
    runtime = Runtime.of(current_app)
    figures = snapshot.take(runtime, detail=False)
    redis = runtime.redis
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KabootarCollector(figures, stats.totals(redis), delivery.raw_outcomes(redis)))
    return generate_latest(registry)


def scraper_token_given(token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    given = request.authorization
    if not token or given is None or given.type != "bearer" or not given.token:
        return False
    return hmac.compare_digest(given.token.encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Response:
    config = Runtime.of(current_app).config
    allowed = (
        config.metrics_public
        or scraper_token_given(config.metrics_token)
        or auth.session_operator() is not None
    )
    if not allowed:
        return Response(
            "scrape with Authorization: Bearer <METRICS_TOKEN>, or log in at /ops/login\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="kabootar metrics"', "Content-Type": "text/plain"},
        )
    return Response(exposition(), 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
