"""GET /metrics: Prometheus's text format, read from Redis at scrape time, no secrets in labels."""

from __future__ import annotations

import base64
from dataclasses import replace

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from gateway.config import Config
from gateway.microblog import posts
from gateway.ops import accounts
from gateway.runtime import Runtime
from gateway.store import keys, stats
from gateway.web import create_app
from tests.conftest import Twilio
from tests.test_ops import PASSWORD, SECRET_NUMBER, log_in, work


def scrape(client: FlaskClient, **kw: object) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name of each sample -> {sorted labels: value}."""
    response = client.get("/metrics", **kw)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_metrics_take_the_scrapers_token_not_an_operators_password_unless_public(
    client: FlaskClient, redis: Redis, config: Config, runtime
):
    # Changed with issue 13: the scraper has its own token instead of an operator's password.
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    token = "scraper-token-0123456789"
    scraper = create_app(replace(config, metrics_token=token), {"TESTING": True}).test_client()
    assert scraper.get("/metrics", headers=bearer("scraper-token-9876543210")).status_code == 401
    accounts.add_user(redis, "prometheus", PASSWORD)
    assert scraper.get("/metrics", headers=basic("prometheus", PASSWORD)).status_code == 401
    assert "kabootar_queue_depth" in scrape(scraper, headers=bearer(token))

    public = create_app(replace(config, metrics_public=True), {"TESTING": True}).test_client()
    assert "kabootar_queue_depth" in scrape(public)


def test_metrics_parse_and_count_what_happened(
    client: FlaskClient, twilio: Twilio, runtime: Runtime, redis: Redis
):
    accounts.add_user(redis, "ana", PASSWORD)
    log_in(client)
    twilio.text(sender=SECRET_NUMBER, body="one #tag")
    twilio.text(sender="+989350000001", body="two")
    twilio.post(twilio.form(body="forged"), signature="bm90IGEgc2lnbmF0dXJl")
    before = scrape(client)
    assert before["kabootar_queue_depth"][(("queue", "inbox"),)] == 2
    assert before["kabootar_queue_oldest_age_seconds"][(("queue", "inbox"),)] >= 0
    work(runtime)
    redis.hincrby(keys.OUTBOUND_STATS, "delivered", 4)  # as the status callbacks count them
    redis.hincrby(keys.OUTBOUND_STATS, "undelivered:30003", 1)

    m = scrape(client)
    assert m["kabootar_texts_received_total"][()] == 2
    assert m["kabootar_posts_total"][()] == 2
    assert m["kabootar_webhooks_refused_total"][(("reason", "signature"),)] == 1
    assert m["kabootar_queue_depth"][(("queue", "inbox"),)] == 0
    assert m["kabootar_sms_total"][(("error_code", ""), ("outcome", "delivered"), ("provider", ""))] == 4
    assert (
        m["kabootar_sms_total"][(("error_code", "30003"), ("outcome", "undelivered"), ("provider", ""))] == 1
    )
    assert m["kabootar_workers_alive"][()] == 0
    stage = (("le", "+Inf"), ("stage", "webhook_to_post"))
    assert m["kabootar_latency_seconds_bucket"][stage] == 2
    assert m["kabootar_latency_seconds_count"][(("stage", "webhook_to_post"),)] == 2

    handles = {p.handle for p in posts.page(redis, keys.TIMELINE_ALL, None, 10)[0]}
    labels = {value for samples in m.values() for key in samples for _, value in key}
    for secret in (SECRET_NUMBER, "+989350000001", "9121234567", *handles):
        assert not any(secret in value for value in labels), secret


def test_latency_buckets_are_cumulative(client: FlaskClient, redis: Redis):
    accounts.add_user(redis, "ana", PASSWORD)
    log_in(client)
    stats.observe_latencies(redis, "post_to_sms", [0.2, 0.9, 4.0, 4000.0])
    m = scrape(client)
    bucket = m["kabootar_latency_seconds_bucket"]
    le = {dict(k)["le"]: v for k, v in bucket.items() if dict(k)["stage"] == "post_to_sms"}
    assert (le["0.25"], le["1.0"], le["5.0"], le["3600.0"], le["+Inf"]) == (1, 2, 3, 3, 4)
    assert m["kabootar_latency_seconds_sum"][(("stage", "post_to_sms"),)] == 4005.1
