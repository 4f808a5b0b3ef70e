"""The charts: a week of per-minute buckets in bounded memory, copied once a minute by one
worker, and drawn over the last hour, day or week (/ops/charts, /ops/api/charts)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis

from gateway.microblog import subscribers
from gateway.ops import accounts
from gateway.outbox import outbound
from gateway.runtime import Runtime
from gateway.store import buckets, keys, queues, rollup, stats
from tests.conftest import Twilio
from tests.live import Processes, start_gateway
from tests.simulated import wait_until
from tests.test_ops import PASSWORD, SECRET_NUMBER, log_in

# Real time (20 s into the current minute): a day's buckets expire a week after the day
# ends, by Redis' clock, so a day long past would be gone as soon as it is written.
NOW = time.time() // 60 * 60 + 20
MINUTE = stats.minute_of(NOW)
WEEK = 7 * 1440


@pytest.fixture
def ops(client: FlaskClient, redis: Redis) -> FlaskClient:
    """A client logged in to the console."""
    accounts.add_user(redis, "ana", PASSWORD)
    assert log_in(client).status_code == 303
    return client


def chart(figures: dict, chart_id: str) -> dict[str, list]:
    """One chart's series, by label."""
    [found] = [c for c in figures["charts"] if c["id"] == chart_id]
    return {s["label"]: s["values"] for s in found["series"]}


def test_a_simulated_week_of_buckets_stays_within_the_bound_the_readme_states(runtime: Runtime, redis: Redis):
    names = rollup.every_series(runtime.config.sms_providers)
    full = ["received", "lat:post_to_sms:3", "depth:sms-replies", "outcome:delivered@twilio"]  # every minute
    pipe = redis.pipeline(transaction=False)
    for m in range(MINUTE - WEEK, MINUTE + 1):
        sparse = (m - MINUTE) % 59 == 0  # the others: about once an hour, on every day
        buckets.write(pipe, m, {n: 1000 + m % 1000 for n in names if n in full or sparse})
    pipe.execute()

    chart_keys = list(redis.scan_iter("kb:chart:*"))
    per_key = {k: redis.memory_usage(k, samples=0) or 0 for k in chart_keys}
    assert len(chart_keys) == len(names) * buckets.KEPT_DAYS  # a week back spans 8 UTC days
    assert max(per_key.values()) <= buckets.BYTES_PER_SERIES_DAY
    # A day written once an hour takes what a day written every minute takes: no growth.
    day = MINUTE // 1440 - 3
    assert (
        per_key[keys.chart_day("lat:post_to_sms:3", day)] == per_key[keys.chart_day("lat:post_to_sms:4", day)]
    )
    assert sum(per_key.values()) <= len(names) * buckets.KEPT_DAYS * buckets.BYTES_PER_SERIES_DAY
    # Each day goes a week after it ends.
    ttl = redis.ttl(keys.chart_day("received", MINUTE // 1440 - 7))
    assert 0 < ttl <= 86400
    got = buckets.read(runtime.rq_redis, ["received", "posts"], MINUTE - WEEK, MINUTE)
    assert got["received"] == [1000 + m % 1000 for m in range(MINUTE - WEEK, MINUTE + 1)]
    assert got["posts"] == [
        1000 + m % 1000 if (m - MINUTE) % 59 == 0 else 0 for m in range(MINUTE - WEEK, MINUTE + 1)
    ]


def test_one_worker_a_minute_copies_the_minute_just_ended(runtime: Runtime, redis: Redis):
    providers = runtime.config.sms_providers
    stats.record(redis, "received", 7, now=NOW)
    stats.record_many(redis, {"sms:sent@twilio": 3, "sms:segments@twilio": 5}, now=NOW)
    stats.sample_depths(redis, {"inbox": 0, "sms-replies": 4, "sms-fanout": 2}, NOW)
    stats.observe_latencies(redis, "webhook_to_post", [0.3, 0.3, 3.0], NOW)

    workers = [rollup.Rollup(providers) for _ in range(3)]
    too_soon = NOW + 40 + rollup.GRACE_SECONDS - 1  # the next minute, within the grace:
    assert sorted(w.tick(redis, too_soon) for w in workers) == [False, False, True]  # the minute before
    assert buckets.read(runtime.rq_redis, ["received"], MINUTE, MINUTE) == {"received": [0]}
    next_minute = NOW + 40 + rollup.GRACE_SECONDS
    assert sorted(w.tick(redis, next_minute) for w in workers) == [False, False, True]
    assert [w.tick(redis, next_minute + 30) for w in workers] == [False] * 3

    slow, fast = stats.bucket_of(3.0), stats.bucket_of(0.3)
    names = ["received", "posts", "sms:sent@twilio", "sms:segments@twilio", "sms:sent@android"]
    names += [
        "depth:inbox",
        "depth:sms-replies",
        f"lat:webhook_to_post:{fast}",
        f"lat:webhook_to_post:{slow}",
    ]
    got = buckets.read(runtime.rq_redis, names, MINUTE, MINUTE)
    assert {n: v for n, [v] in got.items()} == {
        "received": 7,
        "posts": 0,
        "sms:sent@twilio": 3,
        "sms:segments@twilio": 5,
        "sms:sent@android": 0,
        "depth:inbox": 1,  # sampled, empty (0 would be "not sampled")
        "depth:sms-replies": 5,
        f"lat:webhook_to_post:{fast}": 2,
        f"lat:webhook_to_post:{slow}": 1,
    }


def test_minutes_missed_while_no_worker_ran_are_caught_up(runtime: Runtime, redis: Redis):
    providers = runtime.config.sms_providers
    rollup.roll(redis, providers, MINUTE - 100)
    stats.record(redis, "posts", 2, now=NOW - 90 * 60)
    stats.record(redis, "posts", 5, now=NOW - 10 * 60)
    assert rollup.roll(redis, providers, MINUTE - 1) == 99
    assert rollup.roll(redis, providers, MINUTE - 1) == 0  # nothing new
    got = buckets.read(runtime.rq_redis, ["posts"], MINUTE - 100, MINUTE - 1)["posts"]
    assert (got[10], got[90], sum(got)) == (2, 5, 7)


@pytest.mark.e2e
def test_a_worker_process_copies_the_minutes_that_ended_on_its_own(
    redis_server: str, runtime: Runtime, redis: Redis, processes: Processes, tmp_path: Path
):
    before = time.time() - 60  # the minute before this one: ended
    stats.record(redis, "received", 4, now=before)
    stats.sample_depths(redis, {"sms-replies": 9}, before)
    start_gateway(redis_server, processes, tmp_path / "var")  # `kabootar web` and `kabootar worker`
    m = stats.minute_of(before)
    copied = {"received": [4], "depth:sms-replies": [10]}  # (a depth is kept plus one)
    wait_until(lambda: buckets.read(runtime.rq_redis, list(copied), m, m) == copied, timeout=20)
    assert int(redis.get(keys.CHART_ROLLED) or 0) >= m


def _week_of_history(redis: Redis) -> int:
    """Minutes three days ago, as the rollup left them: returns the first of 30."""
    first = (MINUTE - 3 * 1440) // 30 * 30  # a point of the week's chart starts there
    pipe = redis.pipeline(transaction=False)
    for i in range(30):
        values = {"received": 6, "sms:sent@twilio": 60, "sms:segments@twilio": 120}
        values[f"lat:post_to_sms:{stats.bucket_of(0.3 if i < 27 else 3.0)}"] = 10
        if i == 12:
            values["depth:sms-replies"] = 120 + 1
        buckets.write(pipe, first + i, values)
    pipe.set(keys.CHART_ROLLED, MINUTE - 1)
    pipe.execute()
    return first


def test_a_week_sums_minutes_into_half_hours(ops: FlaskClient, redis: Redis):
    first = _week_of_history(redis)
    week = ops.get("/ops/api/charts?range=week").get_json()
    assert week["step_seconds"] == 1800 and len(week["t"]) == len(week["labels"]) == 336
    i = week["t"].index(first * 60)
    assert chart(week, "throughput")["texts in"][i] == 6.0  # per minute, over the half hour
    assert chart(week, "throughput")["SMS out: Twilio"][i] == 60.0
    latency = chart(week, "latency")
    assert 0.25 < latency["post → SMS p50"][i] <= 0.5 < 2.5 < latency["post → SMS p99"][i] <= 5.0
    assert latency["post → SMS p50"][i - 1] is None  # nothing measured: a gap, not a zero
    assert chart(week, "waiting")["SMS to send"][i] == 120.0
    assert chart(week, "drain")["at the rate they went out"][i] == 120.0  # 120 SMS at 1 SMS/s
    rates = chart(week, "send_rate")
    assert rates["Twilio: sent"][i] == 2.0 and set(rates["Twilio: limit"]) == {1.0}  # SMS_MPS=1


def test_each_range_sends_a_few_hundred_points_at_most(ops: FlaskClient):
    for name, points, step in [("hour", 60, 60), ("day", 288, 300), ("week", 336, 1800)]:
        figures = ops.get(f"/ops/api/charts?range={name}").get_json()
        assert (figures["range"], len(figures["t"]), figures["step_seconds"]) == (name, points, step)
        assert all(b - a == step for a, b in zip(figures["t"], figures["t"][1:], strict=False))
        assert figures["t"][-1] <= time.time() < figures["t"][-1] + step
        assert {len(s["values"]) for c in figures["charts"] for s in c["series"]} == {points}


@pytest.mark.parametrize(
    "value", ["year", "", "HOUR", "hour ", "x" * 5000], ids=["year", "empty", "case", "space", "long"]
)
def test_a_range_other_than_hour_day_or_week_is_refused(ops: FlaskClient, value: str):
    api = ops.get("/ops/api/charts", query_string={"range": value})
    assert api.status_code == 400 and api.get_json() == {"error": "range must be one of: hour, day, week"}
    page = ops.get("/ops/charts", query_string={"range": value})
    assert (
        page.status_code == 400 and page.get_data(as_text=True) == "range must be one of: hour, day, week\n"
    )


def test_texts_show_in_the_last_hour_at_once_and_deliveries_by_provider(
    ops: FlaskClient, twilio: Twilio, runtime: Runtime, redis: Redis, drain
):
    rollup.roll(redis, runtime.config.sms_providers, MINUTE - 1)  # the rollup has read the outcomes
    for body in ("the square is full", "no SMS since noon", "#tehran crowds"):
        assert twilio.text(sender=SECRET_NUMBER, body=body).status_code == 200
    drain()  # the texter is registered: SMS can be queued to them
    [recipient] = subscribers.find_ids(redis, [runtime.vault.lookup_key(SECRET_NUMBER)])
    rq_queues = queues.make(runtime.rq_redis)
    for n, (status, code) in enumerate([("delivered", ""), ("delivered", ""), ("undelivered", "30003")]):
        outbound.queue(redis, rq_queues, [(recipient or 0, f"sms {n}")], intent=f"charts:{n}", kind="answer")
        mid = outbound.message_id(f"charts:{n}", recipient or 0)
        form = {"MessageSid": f"SM{n:032x}", "MessageStatus": status, "ErrorCode": code}
        assert twilio.post(form, path=f"/twilio/status?m={mid}").status_code == 200

    response = ops.get("/ops/api/charts?range=hour")
    hour = response.get_json()
    assert sum(chart(hour, "throughput")["texts in"]) == 3
    outcomes = chart(hour, "outcomes")
    assert (sum(outcomes["Twilio: delivered"]), sum(outcomes["Twilio: undelivered"])) == (2, 1)
    assert sum(outcomes["Android phone: delivered"]) == 0
    assert SECRET_NUMBER not in response.get_data(as_text=True)
    assert SECRET_NUMBER[1:] not in ops.get("/ops/charts").get_data(as_text=True)


def test_the_page_reads_without_javascript_a_table_per_chart_with_units(ops: FlaskClient, redis: Redis):
    first = _week_of_history(redis)
    response = ops.get("/ops/charts?range=week")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "http" not in csp
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [] and "<style" not in html and "style=" not in html
    tables = re.findall(
        r'<section id="chart-(\w+)".*?<h2>(.*?)</h2>.*?<details open>.*?</details>', html, re.S
    )
    assert [t[0] for t in tables] == ["throughput", "latency", "waiting", "drain", "outcomes", "send_rate"]
    assert "(per minute)" in tables[0][1] and "(seconds)" in tables[1][1] and "(segments / s)" in tables[5][1]
    assert html.count('<th scope="row">') == 6 * 336
    label = time.strftime("%a %H:%M", time.gmtime(first * 60))
    row = re.search(
        rf'<section id="chart-throughput".*?<tr><th scope="row">{label}</th>(.*?)</tr>', html, re.S
    )
    assert row and re.findall(r'<td class="n">([^<]*)</td>', row.group(1))[:3] == ["6", "0", "60"]
    assert 'href="/ops/charts?range=day"' in html and 'aria-current="page">Last week' in html
