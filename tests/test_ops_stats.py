"""gateway.stats: the counters and histograms behind the console's rates and percentiles."""

from __future__ import annotations

import pytest
from redis import Redis

from gateway.ops import present
from gateway.store import stats

T0 = 1_750_000_040.0  # 20 s into a minute


def test_rate_over_the_last_minute_slides_across_minute_boundaries(redis: Redis):
    stats.record(redis, "received", 60, now=T0 - 60)  # the previous minute: 60 texts
    stats.record(redis, "received", 10, now=T0)  # this minute so far: 10
    window = stats.Window.read(redis, now=T0)
    # The last 60 s hold this minute's 10 and two thirds of the previous minute's 60.
    assert window.last_minute("received") == pytest.approx(10 + 60 * 40 / 60)
    assert window.per_second("received") == pytest.approx(50 / 60)
    assert window.total("received") == 70


def test_minute_counters_expire_and_totals_stay(redis: Redis):
    stats.record(redis, "posts", 3, now=T0)
    ttl = redis.ttl(f"kb:stats:m:{stats.minute_of(T0)}")
    assert 0 < ttl <= stats.MINUTE_TTL_SECONDS
    assert redis.ttl("kb:stats:total") == -1


def test_percentiles_from_buckets_over_the_last_five_minutes(redis: Redis):
    stats.observe_latencies(redis, "webhook_to_post", [0.3] * 90 + [3.0] * 9 + [20.0], now=T0 - 120)
    stats.observe_latencies(redis, "webhook_to_post", [1000.0] * 50, now=T0 - 600)  # too old to count
    counts = stats.Window.read(redis, now=T0).histogram("webhook_to_post", 5)
    assert sum(counts) == 100
    p50 = stats.quantile(0.5, counts)
    assert p50 is not None and 0.25 < p50 <= 0.5
    assert 2.5 < (stats.quantile(0.95, counts) or 0) <= 5.0
    assert 10.0 < (stats.quantile(0.995, counts) or 0) <= 30.0
    assert stats.quantile(0.5, [0.0] * len(counts)) is None


def test_sms_outcomes_count_by_status_and_code(redis: Redis):
    stats.record_sms(redis, "sent", segments=2)
    stats.record_sms(redis, "failed", 21211)
    window = stats.Window.read(redis)
    assert (window.total("sms:sent"), window.total("sms:segments")) == (1, 2)
    assert (window.total("sms:failed"), window.total("sms:failed:21211")) == (1, 1)


@pytest.mark.parametrize(
    "seconds, shown",
    [(None, "—"), (0.042, "42 ms"), (7.46, "7.5 s"), (125, "2 min 5 s"), (7300, "2 h 1 min")],
    ids=["none", "ms", "s", "min", "h"],
)
def test_durations_read_naturally(seconds, shown):
    assert present.fmt_dur(seconds) == shown


def test_sparkline_spans_its_box_and_reads_gaps_as_zero():
    points = present.spark_points([None, 2.0, 4.0], width=120, height=24)
    assert points == "0.0,23.0 60.0,12.0 120.0,1.0"


def test_sparkline_history_holds_sampled_depths_and_ends_with_now(redis: Redis, runtime):
    from gateway.ops import backlog
    from gateway.store import keys, queues, stats

    rq_queues = queues.make(Redis.from_url(runtime.config.redis_url or ""))
    redis.rpush(keys.INBOX, "SMa", "SMb")
    stats.sample_depths(redis, queues.depths(redis, rq_queues))  # a watchdog's sample, this minute
    redis.lpop(keys.INBOX)
    window = stats.Window.read(redis)
    [inbox] = [q for q in backlog.read(redis, queues.places(rq_queues), window) if q.spec.id == "inbox"]
    assert window.series("depth:inbox")[-1] == 2
    assert inbox.history[-1] == 1 and len(inbox.history) == 61
