"""Alerts: the rules an operator hears about (gateway/ops/alerts.py), as /ops/api/alerts and the
console's banner show them, as Prometheus rules (deploy/prometheus/alerts.yml, promtool), and
as POSTs to ALERT_WEBHOOK_URL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient
from redis import Redis

from gateway.config import Config, ConfigError
from gateway.ops import accounts, alert_webhook, alerts
from gateway.outbox import routes
from gateway.pipeline import intake
from gateway.providers.records import InboundText
from gateway.runtime import Runtime
from gateway.store import keys, stats
from gateway.web import create_app
from tests.conftest import Twilio
from tests.test_metrics import basic, bearer
from tests.test_ops import PASSWORD, SECRET_NUMBER, health, log_in, work

ROOT = Path(__file__).resolve().parent.parent
RULES_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
TOKEN = "scraper-token-0123456789"


def alert_list(client: FlaskClient, **kw: object) -> list[dict[str, str]]:
    response = client.get("/ops/api/alerts", **kw)
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(response.get_json())


def named(found: list[dict[str, str]], name: str) -> list[dict[str, str]]:
    return [a for a in found if a["name"] == name]


def beat(redis: Redis, name: str = "box.4242") -> None:
    """A worker's watchdog beats: one worker is alive."""
    redis.zadd(keys.WORKER_HEARTBEAT, {name: time.time()})


@pytest.fixture
def operator_client(client: FlaskClient, redis: Redis) -> FlaskClient:
    accounts.add_user(redis, "ana", PASSWORD)
    assert log_in(client).status_code == 303
    return client


def test_no_worker_alert_has_the_same_since_in_every_web_process_and_ends_when_one_beats(
    operator_client: FlaskClient, config: Config, redis: Redis
):
    before = datetime.now(UTC).replace(microsecond=0)
    [alert] = alert_list(operator_client)
    assert (alert["name"], alert["severity"]) == ("NoWorker", "critical")
    assert alert["summary"].startswith("No worker is alive")
    since = datetime.strptime(alert["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= since <= datetime.now(UTC)

    other = create_app(config, {"TESTING": True}).test_client()  # another web process
    time.sleep(1.1)
    assert log_in(other).status_code == 303
    assert named(alert_list(other), "NoWorker") == [alert]  # same start, not "now"
    assert health(other)["alerts"] == [alert]  # the console's JSON and banner show the same

    beat(redis)
    assert alert_list(other) == []
    assert health(operator_client)["ok"] is True
    redis.delete(keys.WORKER_HEARTBEAT)  # gone again: a new alert, with a new start
    [again] = alert_list(operator_client)
    assert again["name"] == "NoWorker" and again["since"] > alert["since"]


def test_alerts_need_a_login_or_the_scrapers_token(client: FlaskClient, config: Config, redis: Redis):
    assert client.get("/ops/api/alerts").status_code == 401
    scraper = create_app(replace(config, metrics_token=TOKEN), {"TESTING": True}).test_client()
    assert scraper.get("/ops/api/alerts", headers=bearer("not-the-token-0123456789")).status_code == 401
    assert named(alert_list(scraper, headers=bearer(TOKEN)), "NoWorker")
    assert scraper.get("/ops/api/health", headers=bearer(TOKEN)).status_code == 401  # only the alerts
    accounts.add_user(redis, "script", PASSWORD)
    assert named(alert_list(client, headers=basic("script", PASSWORD)), "NoWorker")  # like /api/health


def test_a_text_waiting_too_long_names_its_queue_never_the_number(
    operator_client: FlaskClient, runtime: Runtime, redis: Redis
):
    beat(redis)
    stale = InboundText("SM" + "5" * 32, SECRET_NUMBER, "waiting", received_at=time.time() - 300)
    intake.store(redis, runtime.vault, stale)
    [alert] = alert_list(operator_client)
    assert (alert["name"], alert["severity"]) == ("QueueTooOld", "critical")
    assert alert["summary"] == "texts to post: the oldest has waited 300 s (limit 60 s)."
    page = operator_client.get("/ops").get_data(as_text=True)
    assert '<li data-severity="critical">texts to post: the oldest has waited 300 s' in page
    assert "QueueTooOld, since " in page
    for shown in (json.dumps(alert), page):
        assert SECRET_NUMBER not in shown and SECRET_NUMBER[3:] not in shown

    intake.schedule_drain(runtime.queues)
    work(runtime)  # posted: the alert is over
    assert alert_list(operator_client) == []
    assert redis.hgetall(keys.ALERTS_SINCE) == {}


def failures(redis: Redis, provider: str, failed: int, sent: int) -> None:
    """Outcomes of SMS handed to `provider` in the last minutes, as the sender counts them."""
    for status, n in (("failed", failed), ("sent", sent)):
        for _ in range(n):
            stats.record_many(
                redis, stats.sms_counts(status, "30003" if status == "failed" else None, 1, provider)
            )


def test_a_provider_failing_many_of_enough_sms_alerts_but_one_of_two_does_not(
    operator_client: FlaskClient, redis: Redis, config: Config
):
    beat(redis)
    failures(redis, "twilio", failed=1, sent=1)
    assert alert_list(operator_client) == []  # half failed, but two SMS page nobody
    failures(redis, "android", failed=4, sent=36)
    assert alert_list(operator_client) == []  # 10 % of 40: an ordinary day
    failures(redis, "twilio", failed=9, sent=19)
    [alert] = alert_list(operator_client)
    assert (alert["name"], alert["severity"]) == ("ProviderFailing", "warning")
    assert alert["summary"] == "SMS provider twilio: 10 of 30 SMS failed in the last 10 min."

    routes.set_down(redis, "android", True)  # an operator marked it down: no SMS go through it
    found = alert_list(operator_client)
    assert [a["summary"] for a in found] == [
        alert["summary"],
        "SMS provider android: marked down by an operator.",
    ]
    page = operator_client.get("/ops").get_data(as_text=True)
    assert page.count('<li data-severity="warning">') == 2  # warnings only: the amber banner


def test_send_rate_pinned_at_the_limit_while_the_backlog_grows(
    operator_client: FlaskClient, redis: Redis, config: Config
):
    beat(redis)
    now = time.time()
    lanes = {"sms-replies": 0, "sms-fanout": 40}
    stats.sample_depths(redis, lanes, now - alerts.PINNED_MINUTES * 60)  # 5 minutes ago
    redis.rpush(keys.outbound_lane("fanout"), *[f"m{i}" for i in range(90)])  # and now: 90
    for minute in range(alerts.PINNED_MINUTES + 1):  # 40 segments a minute: 0.67 of SMS_MPS=1
        stats.record_many(redis, {"sms:segments@twilio": 40}, now - minute * 60)
    assert alert_list(operator_client) == []
    for minute in range(alerts.PINNED_MINUTES + 1):  # 60 a minute: the limit
        stats.record_many(redis, {"sms:segments@twilio": 20}, now - minute * 60)
    [alert] = alert_list(operator_client)
    assert (alert["name"], alert["severity"]) == ("SendRatePinned", "warning")
    # 5 minutes back from now take in a share of the sixth: 1.0 to 1.2 segments/s.
    assert re.match(r"SMS through twilio go out at its limit \(1\.[012] of 1 segments/s", alert["summary"])
    assert "grew from 40 to 90" in alert["summary"]

    redis.ltrim(keys.outbound_lane("fanout"), 0, 29)  # the backlog shrinks: the limit suffices
    assert alert_list(operator_client) == []


def test_the_prometheus_rules_are_the_consoles_rules():
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(alerts.RULES) - alerts.CONSOLE_ONLY
    for name, rule in rules.items():
        assert rule["labels"]["severity"] == alerts.RULES[name], name
        assert rule["for"] and rule["annotations"]["summary"], name
    failing = " ".join(rules["ProviderFailing"]["expr"].split())
    assert f"[{alerts.FAILURE_MINUTES}m]" in failing
    assert f">= {alerts.FAILURE_RATIO} *" in failing and f">= {alerts.FAILURE_MIN_SMS}" in failing
    pinned = " ".join(rules["SendRatePinned"]["expr"].split())
    assert f"[{alerts.PINNED_MINUTES}m]" in pinned and f">= {alerts.PINNED_SHARE} *" in pinned


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (make test installs Debian's prometheus when run as root)")
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_they_fire_as_their_unit_tests_expect():
    checked = promtool("check", "rules", str(RULES_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tested = promtool("test", "rules", str(RULES_FILE.with_name("alerts_test.yml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_accepts_metrics_of_a_busy_app_without_warnings(
    client: FlaskClient, twilio: Twilio, runtime: Runtime, redis: Redis, config: Config
):
    twilio.text(sender=SECRET_NUMBER, body="the square is full #IranElection")
    twilio.text(sender="+989350000001", body="FOLLOW #IranElection")
    twilio.post(twilio.form(body="forged"), signature="bm90IGEgc2lnbmF0dXJl")
    work(runtime)
    failures(redis, "twilio", failed=3, sent=5)
    redis.hincrby(keys.OUTBOUND_STATS, "sent@twilio", 5)  # as the sender counts them
    redis.hincrby(keys.OUTBOUND_STATS, "failed:21211@twilio", 3)
    redis.hincrby(keys.OUTBOUND_STATS, "delivered", 4)
    stats.observe_latencies(redis, "post_to_sms", [0.4, 2.0])
    scraper = create_app(replace(config, metrics_token=TOKEN), {"TESTING": True}).test_client()
    text = scraper.get("/metrics", headers=bearer(TOKEN)).get_data(as_text=True)
    for name in ("kabootar_provider_up", "kabootar_sms_segments_total", "kabootar_queue_oldest_age_limit"):
        assert name in text, name

    checked = promtool("check", "metrics", stdin=text)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


# ALERT_WEBHOOK_URL


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, str]]

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server standing for the operators' chat or pager: (its URL, what it got)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-SECRET", server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_three_processes_checking_post_each_start_and_end_once(
    runtime: Runtime, redis: Redis, receiver: tuple[str, list[dict[str, str]]], config: Config
):
    url, received = receiver
    processes = [Runtime.from_config(replace(config, alert_webhook_url=url)) for _ in range(3)]
    stops = [alert_webhook.start(p, interval=0.1) for p in processes]
    try:
        until(lambda: len(received) >= 1)
        time.sleep(0.5)  # a dozen more checks: none sends it again
        [firing] = received
        assert (firing["status"], firing["name"], firing["severity"]) == ("firing", "NoWorker", "critical")
        assert firing["since"] and firing["summary"].startswith("No worker is alive")

        beat(redis)
        until(lambda: len(received) >= 2)
        time.sleep(0.5)
        assert len(received) == 2
        ended = received[1]
        assert (ended["status"], ended["name"], ended["since"]) == ("resolved", "NoWorker", firing["since"])
        assert ended["ended"] >= ended["since"]
    finally:
        for stop in stops:
            stop.set()


def test_a_webhook_that_fails_is_logged_without_its_secret(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, receiver: tuple[str, list[dict[str, str]]]
):
    url, _ = receiver
    refused = url.replace(url.split(":")[2].split("/")[0], "1")  # nothing listens on port 1
    assert alert_webhook.post(refused, {"status": "firing"}) is False
    assert "alert webhook to 127.0.0.1 failed" in caplog.text
    assert "T0KEN-SECRET" not in caplog.text and "hooks" not in caplog.text


@pytest.mark.parametrize("raw", ["hooks.example.com/x", "ftp://example.com/", "https://x/" + "a" * 3000])
def test_alert_webhook_url_must_be_an_http_url(raw: str):
    with pytest.raises(ConfigError, match="ALERT_WEBHOOK_URL"):
        Config.from_env({"ALERT_WEBHOOK_URL": raw})


def test_while_redis_takes_no_writes_each_process_tells_it_and_its_end(
    runtime: Runtime, redis: Redis, receiver: tuple[str, list[dict[str, str]]], config: Config
):
    url, received = receiver
    beat(redis)
    watchers = [alert_webhook.Watcher(Runtime.from_config(replace(config, alert_webhook_url=url)), 0.1)]
    watchers.append(alert_webhook.Watcher(Runtime.from_config(replace(config, alert_webhook_url=url)), 0.1))
    redis.config_set("min-replicas-to-write", 1)  # no replica: every write is refused (NOREPLICAS)
    try:
        for _ in range(3):
            for watcher in watchers:
                watcher.check()
        # Nothing can be claimed in Redis: each process tells it, once.
        assert [(r["status"], r["name"]) for r in received] == [("firing", "NoWritablePrimary")] * 2
        assert received[0]["summary"].startswith("Redis at ")
    finally:
        redis.config_set("min-replicas-to-write", 0)
    for watcher in watchers:
        watcher.check()
    assert [(r["status"], r["name"]) for r in received[2:]] == [("resolved", "NoWritablePrimary")] * 2
