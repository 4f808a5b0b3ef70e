"""Scenario charts: the Redis memory a week of the charts' per-minute buckets takes, against
the bound the README states, and what drawing the week costs.

A redis-server of its own (as the tests start it: no append-only file) is filled directly
with a simulated week: every series of both providers (Twilio and the Android phone), a
value every minute, through `buckets.write`, as the rollup writes them. The figures:
MEMORY USAGE summed over the chart keys (what the bound is stated in), Redis' own
used_memory before and after, and the time /ops/api/charts?range=week takes to build.
"""

from __future__ import annotations

import time

from bench.context import OUT, Context
from bench.report import Row, Section
from gateway.box import embedded_redis
from gateway.config import Config
from gateway.ops import charts
from gateway.runtime import Runtime
from gateway.store import buckets, rollup, stats

PROVIDERS = ("twilio", "android")
WEEK = 7 * 1440
DAY_CHUNK = 1440  # minutes a pipeline carries


def _fill(runtime: Runtime, last: int) -> None:
    names = rollup.every_series(PROVIDERS)
    for first in range(last - WEEK, last + 1, DAY_CHUNK):
        pipe = runtime.redis.pipeline(transaction=False)
        for m in range(first, min(first + DAY_CHUNK, last + 1)):
            buckets.write(pipe, m, {name: 1 + (m + i) % 997 for i, name in enumerate(names)})
        pipe.execute()


def run(ctx: Context) -> Section:
    port = embedded_redis.free_port()
    proc = embedded_redis.start(OUT / "charts-redis", port, durable=False)
    url = f"redis://127.0.0.1:{port}/0"
    env = {"REDIS_URL": url, "SECRET_KEY": "bench", "SIMULATOR": "1", "SMS_PROVIDERS": ",".join(PROVIDERS)}
    runtime = Runtime.from_config(Config.from_env(env, var_dir=OUT / "charts-var"))
    try:
        redis = runtime.redis
        before = int(redis.info("memory")["used_memory"])
        now = time.time()
        started = time.monotonic()
        _fill(runtime, stats.minute_of(now))
        fill_seconds = time.monotonic() - started
        chart_keys = list(redis.scan_iter("kb:chart:*", count=1000))
        used = sum(int(redis.memory_usage(k, samples=0) or 0) for k in chart_keys)
        after = int(redis.info("memory")["used_memory"])
        series = len(rollup.every_series(PROVIDERS))
        bound = series * buckets.KEPT_DAYS * buckets.BYTES_PER_SERIES_DAY
        redis.set("kb:chart:rolled", stats.minute_of(now))  # every minute read from the buckets
        reads = []
        for _ in range(5):
            t = time.monotonic()
            charts.read(runtime, charts.SPANS["week"], now)
            reads.append(time.monotonic() - t)
    finally:
        runtime.redis.close()
        runtime.rq_redis.close()
        proc.terminate()
        proc.wait(timeout=10)
    mb = round(used / 1e6, 2)
    rows = [
        Row("charts", f"Redis memory, a week of per-minute buckets ({series} series)", mb, "MB",
            target=f"≤ {bound / 1e6:.2f} MB (README)", passed=used <= bound,
            note=f"{len(chart_keys)} keys, {used / len(chart_keys):,.0f} B each (MEMORY USAGE)"),
        Row("charts", "the week's chart JSON, built (median of 5)", round(sorted(reads)[2] * 1e3, 1), "ms",
            note=f"{series} series × 10,080 minutes read, summed into 336 points"),
    ]  # fmt: skip
    raw = {
        "series": series,
        "keys": len(chart_keys),
        "memory_usage_bytes": used,
        "bound_bytes": bound,
        "used_memory_delta_bytes": after - before,
        "fill_seconds": round(fill_seconds, 1),
        "week_read_seconds": [round(r, 4) for r in reads],
    }
    return Section(rows=rows, raw=raw)
