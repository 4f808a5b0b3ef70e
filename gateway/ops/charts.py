"""The charts' figures over the last hour, day or week, as one JSON-ready dict: the page
(/ops/charts, whose tables draw without JavaScript) and its JSON (/ops/api/charts) read it.

Minutes up to the last rollup come from the week's buckets (store/buckets.py); the ones
after it, the current minute included, from the counters' minute hashes themselves, so
the last hour moves while texts flow, with or without a worker to roll up. A wider range
sums its minutes into wider points (5 minutes for a day, 30 for a week), so the browser
gets at most a few hundred points per series; the percentiles of a point are those of
its summed latency buckets, not an average of percentiles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from gateway.ops.delivery import drain_seconds
from gateway.runtime import Runtime
from gateway.store import buckets, keys, rollup, stats


@dataclass(frozen=True)
class Span:
    name: str  # the `range` parameter
    label: str
    minutes: int
    step: int  # minutes a point sums
    refresh: int  # seconds between the page's updates
    time_format: str  # of a point's start, UTC (strftime)


SPANS = {
    s.name: s
    for s in (
        Span("hour", "Last hour", 60, 1, 5, "%H:%M"),
        Span("day", "Last day", 1440, 5, 60, "%H:%M"),
        Span("week", "Last week", 7 * 1440, 30, 300, "%a %H:%M"),
    )
}
PERCENTILES = (0.5, 0.95, 0.99)
STAGES = {"webhook_to_post": "webhook → post", "post_to_sms": "post → SMS"}
NAMES = {"twilio": "Twilio", "android": "Android phone"}


def shown(provider: str) -> str:
    """A provider as the console names it."""
    return NAMES.get(provider, provider)


def minutes(runtime: Runtime, span: Span, now: float) -> tuple[int, dict[str, list[int]]]:
    """The first minute shown (a multiple of the step), and every series' value for each
    minute from it to the current one."""
    redis, providers = runtime.redis, runtime.config.sms_providers
    current = stats.minute_of(now)
    start = (current // span.step - span.minutes // span.step + 1) * span.step
    rolled = redis.get(keys.CHART_ROLLED)
    rolled_to = min(current, int(cast(str, rolled))) if rolled is not None else start - 1
    names = rollup.every_series(providers)
    stored = buckets.read(runtime.rq_redis, names, start, rolled_to)
    values = {name: stored[name] + [0] * (current - max(start - 1, rolled_to)) for name in names}
    # The minutes not rolled up yet, from the minute hashes (which live about two hours).
    tail = range(max(rolled_to + 1, start, current - rollup.CATCH_UP_MINUTES + 1), current + 1)
    pipe = redis.pipeline(transaction=False)
    for m in tail:
        pipe.hgetall(keys.stats_minute(m))
    pipe.hgetall(keys.OUTBOUND_STATS)
    pipe.hgetall(keys.CHART_OUTCOMES_SEEN)
    *found, now_stats, seen_stats = pipe.execute()
    for m, minute in zip(tail, found, strict=True):
        for name, value in rollup.from_minute(minute, providers).items():
            values[name][m - start] = value
    for name, n in rollup.outcomes_since(now_stats, seen_stats, providers).items():
        values[name][current - start] += n  # reported since the last rollup: charted now
    return start, values


class Points:
    """A span's minutes grouped into its points."""

    def __init__(self, span: Span, start: int, values: dict[str, list[int]]) -> None:
        self.span, self.values = span, values
        self.count = span.minutes // span.step
        self.starts = [(start + i * span.step) * 60 for i in range(self.count)]

    def _groups(self, name: str) -> list[list[int]]:
        v, step = self.values[name], self.span.step
        return [v[i * step : (i + 1) * step] for i in range(self.count)]

    def sums(self, names: Sequence[str]) -> list[float]:
        """The series summed over each point (several series added together)."""
        return [float(sum(sum(g) for g in groups)) for groups in zip(*map(self._groups, names), strict=True)]

    def per_minute(self, *names: str) -> list[float]:
        return [round(s / self.span.step, 2) for s in self.sums(names)]

    def per_second(self, *names: str) -> list[float]:
        return [round(s / (self.span.step * 60), 3) for s in self.sums(names)]

    def highest(self, *names: str) -> list[float | None]:
        """A level (several added together) at its highest in each point; None where not sampled."""
        found: list[float | None] = []
        for groups in zip(*map(self._groups, names), strict=True):
            sampled = [sum(v - 1 for v in minute if v) for minute in zip(*groups, strict=True) if any(minute)]
            found.append(float(max(sampled)) if sampled else None)
        return found

    def quantiles(self, stage: str, q: float) -> list[float | None]:
        names = [f"lat:{stage}:{b}" for b in range(len(stats.LATENCY_BOUNDS) + 1)]
        per_bucket = [self.sums([name]) for name in names]
        found = [stats.quantile(q, counts) for counts in zip(*per_bucket, strict=True)]
        return [None if v is None else round(v, 3) for v in found]


Series = list[tuple[str, Sequence[float | None]]]


def _chart(chart_id: str, title: str, unit: str, series: Series, limits: int = 0) -> dict[str, Any]:
    """A chart as the page draws it; with `limits`, every `limits`-th series is a limit (dashed)."""
    return {
        "id": chart_id,
        "title": title,
        "unit": unit,
        "series": [
            {"label": label, "values": list(values), "limit": bool(limits) and (i + 1) % limits == 0}
            for i, (label, values) in enumerate(series)
        ],
    }


def cell(value: float | None) -> str:
    """A value in a chart's table, as static/charts.js writes it (String() of a JS number)."""
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else str(value)


def read(runtime: Runtime, span: Span, now: float | None = None) -> dict[str, Any]:
    """Every chart over `span`, as of `now`."""
    now = time.time() if now is None else now
    config = runtime.config
    providers = config.sms_providers
    p = Points(span, *minutes(runtime, span, now))
    lanes = [level for level in rollup.levels() if level.startswith("depth:sms-")]
    sms_waiting = p.highest(*lanes)
    sent_per_s = p.per_second(*(f"sms:sent@{provider}" for provider in providers))
    eta: list[float | None] = []
    for waiting, rate in zip(sms_waiting, sent_per_s, strict=True):
        seconds = None if waiting is None else drain_seconds(waiting, rate, config.total_mps)
        eta.append(None if seconds is None else round(seconds, 1))
    send_rate: Series = []
    for provider in providers:
        limit = config.mps(provider)
        send_rate += [
            (f"{shown(provider)}: sent", p.per_second(f"sms:segments@{provider}")),
            (f"{shown(provider)}: limit", [limit if limit > 0 else None] * p.count),
        ]
    charts = [
        _chart("throughput", "Texts in, posts and SMS out", "per minute", [
            ("texts in", p.per_minute("received")),
            ("posts", p.per_minute("posts")),
            *((f"SMS out: {shown(x)}", p.per_minute(f"sms:sent@{x}")) for x in providers),
        ]),
        _chart("latency", "Latency percentiles", "seconds", [
            (f"{label} p{round(q * 100)}", p.quantiles(stage, q))
            for stage, label in STAGES.items() for q in PERCENTILES
        ]),
        _chart("waiting", "Waiting (the most in each point)", "texts or SMS", [
            ("texts to post", p.highest("depth:inbox")),
            ("SMS to send", sms_waiting),
        ]),
        _chart("drain", "Time to send the SMS waiting", "seconds", [("at the rate they went out", eta)]),
        _chart("outcomes", "Delivery outcomes by provider", "per minute", [
            (f"{shown(x)}: {status}", p.per_minute(f"outcome:{status}@{x}"))
            for x in providers for status in rollup.OUTCOMES
        ]),
        _chart("send_rate", "Send rate against each provider's limit (SMS_MPS)", "segments / s",
               send_rate, limits=2),
    ]  # fmt: skip
    return {
        "range": span.name,
        "label": span.label,
        "step_seconds": span.step * 60,
        "refresh_seconds": span.refresh,
        "at": round(now, 3),
        "t": p.starts,
        "labels": [time.strftime(span.time_format, time.gmtime(t)) for t in p.starts],
        "charts": charts,
    }
