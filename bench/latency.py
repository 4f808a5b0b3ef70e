"""Scenario 2b, latency: webhook → post at an offered 200 texts/s, open loop.

A few sender threads post pre-signed webhooks on a fixed schedule (text i at start +
i / rate, whether or not earlier ones were answered), noting when each request began.
A poller thread reads the public timeline every ~2 ms (only ids newer than the last it
saw, then each new post's MessageSid) and notes when each post first appeared. Latency
= first seen − request began, per MessageSid. The poller notes the time after Redis
answered, so a figure can be up to one poll interval (plus a round trip) late, never early.
"""

from __future__ import annotations

import http.client
import itertools
import math
import statistics
import threading
import time
from typing import Any

from bench import signed
from bench.common import posts, register, wait_until, warm_up
from bench.context import SENDERS, Context
from bench.report import Row, Section
from bench.stacks import start_kabootar
from gateway.store import keys

SENDER_THREADS = 8
POLL_SECONDS = 0.002
LOOKBACK_IDS = 200  # a second of posts at the offered rate
TARGET_P50_MS, TARGET_P99_MS = 20.0, 100.0


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of `values`."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Poller(threading.Thread):
    """Notes the first time each post (by MessageSid) is in the public timeline."""

    def __init__(self, redis: Any) -> None:
        super().__init__(daemon=True)
        self.redis = redis
        self.last_id = int(redis.zrevrange(keys.TIMELINE_ALL, 0, 0)[0]) if posts(redis) else 0
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.stop = threading.Event()

    def run(self) -> None:
        looked_at: set[int] = set()
        while not self.stop.is_set():
            # Ids are handed out before posts are filed, so two workers may file 101 before
            # 100: look back LOOKBACK_IDS below the newest seen, and skip what was seen.
            found = self.redis.zrangebyscore(keys.TIMELINE_ALL, f"({self.last_id - LOOKBACK_IDS}", "+inf")
            now = time.time()
            self.polls += 1
            ids = [int(x) for x in found if int(x) not in looked_at]
            if ids:
                pipe = self.redis.pipeline(transaction=False)
                for post_id in ids:
                    pipe.hget(keys.post(post_id), "sid")
                for sid in pipe.execute():
                    if sid and sid not in self.seen:
                        self.seen[sid] = now
                looked_at.update(ids)
                self.last_id = max(self.last_id, *ids)
            time.sleep(POLL_SECONDS)


def _send(port: int, rows: list[tuple[str, str, str]], rate: float, start: float) -> dict[str, Any]:
    """Post rows[i] at start + i / rate from SENDER_THREADS threads; when each began, and answers."""
    began: dict[str, float] = {}
    lateness: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = itertools.count()

    def sender() -> None:
        while True:
            i = next(counter)
            if i >= len(rows):
                return
            signature, body, sid = rows[i]
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            status = 0
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(
                    "POST",
                    "/twilio/sms",
                    body,
                    {
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                )
                response = conn.getresponse()
                response.read()
                status = response.status
                conn.close()
            except OSError:
                pass
            with lock:
                began[sid] = t
                lateness.append(t - due)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDER_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"began": began, "lateness": lateness, "statuses": statuses}


def run(ctx: Context) -> Section:
    s = ctx.settings
    n = int(s.latency_rate * s.latency_seconds)
    path = ctx.requests("latency", n)
    rows = signed.read(path)
    with ctx.fleet("latency-kabootar") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=s.workers, durable=True)
        redis = kb.redis
        register(
            redis,
            kb.vault,
            signed.senders(SENDERS["warm"], s.warm_texts) + signed.senders(SENDERS["latency"], n),
        )
        warm_up(kb.base_url, ctx.requests("warm", s.warm_texts), "/twilio/sms")
        wait_until(lambda: posts(redis) >= s.warm_texts, 60, fleet)
        poller = Poller(redis)
        poller.start()
        start = time.time() + 0.2
        sent = _send(ctx.port, rows, s.latency_rate, start)
        sending = time.time() - start
        ok = [sid for _, _, sid in rows if sid in sent["began"]]
        wait_until(lambda: all(sid in poller.seen for sid in ok), 30, fleet)
        poller.stop.set()
        poller.join()
    latencies = [(poller.seen[sid] - sent["began"][sid]) * 1000 for sid in ok if sid in poller.seen]
    missing = sum(1 for sid in ok if sid not in poller.seen)
    figures: dict[str, Any] = {
        "offered": n,
        "offered_rate_per_s": s.latency_rate,
        "achieved_send_rate_per_s": n / sending if sending else None,
        "answers": {str(k): v for k, v in sent["statuses"].items()},
        "posts_seen": len(latencies),
        "never_seen": missing,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
            "mean": statistics.fmean(latencies) if latencies else None,
        },
        "send_lateness_ms_p99": (percentile(sent["lateness"], 99) or 0) * 1000,
        "poll_interval_ms": POLL_SECONDS * 1000,
        "polls": poller.polls,
        "workers": s.workers,
    }
    lat = figures["latency_ms"]
    section = Section(raw=figures)
    note = f"{len(latencies):,} texts over {s.latency_seconds:.0f}s at {s.latency_rate:.0f}/s"
    if missing:
        note += f"; {missing} never seen"
    for name, target in (("p50", TARGET_P50_MS), ("p99", TARGET_P99_MS)):
        value = lat[name]
        section.rows.append(
            Row(
                "2 latency",
                f"webhook → post {name} at {s.latency_rate:.0f}/s",
                value,
                "ms",
                target=f"≤ {target:.0f} ms",
                passed=None if value is None else value <= target and not missing,
                note=note,
            )
        )
    return section
