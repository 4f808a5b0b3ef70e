"""Scenario 2, end to end: texts per second from webhook to visible in /api/v1/posts.

Kabootar runs as `make run` does (durable Redis, `kabootar web`, WORKERS workers). Its
texters are registered beforehand (a crisis's steady state: people who texted before),
each text from its own number. wrk offers N texts once each, as fast as it goes, while
the workers turn them into posts; the rate is N over the time from wrk's start until the
N-th post is in the public timeline (what /api/v1/posts lists). The tutorial gateway
gets the same treatment with `rq worker` (forking) and with SimpleWorker, counting
entries in its `feed` list. Then py-spy samples Kabootar's web and worker processes
through a smaller run, for the end-to-end profiles.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bench import signed
from bench.common import cores, cpu_delta, posts, register, send_once, wait_until, warm_up
from bench.context import SENDERS, Context
from bench.procs import Fleet
from bench.profile import Profiler
from bench.report import Row, Section
from bench.stacks import start_kabootar, start_peer, start_redis

TARGET_RATE = 1300.0
TARGET_TIMES_TUTORIAL = 10.0


@dataclass
class Watch:
    """Polls a count in Redis in a thread: when it reached `goal`, and how it grew."""

    count: Any  # () -> int
    goal: int
    reached_at: float | None = None
    curve: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watch:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        last_mark = 0.0
        while not self._stop.is_set():
            try:
                n, now = self.count(), time.time()
            except RedisError:  # Redis stopped under us (the run is being torn down)
                return
            if now - last_mark >= 0.5:
                self.curve.append((round(now, 3), n))
                last_mark = now
            if n >= self.goal:
                self.reached_at = now
                self.curve.append((round(now, 3), n))
                return
            time.sleep(0.01)

    def wait(self, timeout: float, fleet: Fleet) -> bool:
        ok = wait_until(lambda: self.reached_at is not None, timeout, fleet, every=0.05)
        self._stop.set()
        return ok


def offer(
    ctx: Context,
    fleet: Fleet,
    base_url: str,
    path: str,
    requests: Any,
    n: int,
    count: Any,
    wait_seconds: float,
) -> dict[str, Any]:
    """Offer `n` texts once each and time until `count()` grew by `n`."""
    base = count()
    cpu0 = fleet.cpu_by_role()
    watch = Watch(lambda: count() - base, n).start()
    started = time.time()
    result = send_once(
        base_url, requests, path, seconds=max(30.0, n / 200), log=ctx.out / "logs" / "e2e-wrk.log"
    )
    watch.wait(wait_seconds, fleet)
    finished = watch.reached_at or time.time()
    made = count() - base
    elapsed = finished - started
    cpu = cpu_delta(cpu0, fleet.cpu_by_role())
    cpu["wrk"] = round(result.cpu_seconds, 2)
    return {
        "offered": n,
        "answered_200": result.statuses.get("ok"),
        "answered_other": result.statuses.get("other"),
        "visible": made,
        "all_visible": watch.reached_at is not None,
        "seconds_until_last_visible": round(elapsed, 3),
        "seconds_wrk_took_to_offer": round(result.wall_seconds, 3),
        "rate_per_s": made / elapsed if elapsed > 0 else None,
        "ingest_rate_per_s": result.rps,
        "cpu_seconds": cpu,
        "cores_busy": cores(cpu, elapsed),
        "growth": [(round(t - started, 2), c) for t, c in watch.curve],
        "wrk": result.as_dict(),
    }


def _kabootar(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    requests = ctx.requests("e2e", s.e2e_texts)
    warm = ctx.requests("warm", s.warm_texts)
    with ctx.fleet("e2e-kabootar") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=s.workers, durable=True)
        redis = kb.redis
        t = time.time()
        numbers = signed.senders(SENDERS["warm"], s.warm_texts) + signed.senders(SENDERS["e2e"], s.e2e_texts)
        register(redis, kb.vault, numbers)
        registered = time.time() - t
        warm_up(kb.base_url, warm, "/twilio/sms")
        if not wait_until(lambda: posts(redis) >= s.warm_texts, 60, fleet):
            raise RuntimeError(f"warm-up texts did not become posts (see {fleet.logs})")
        out = offer(
            ctx,
            fleet,
            kb.base_url,
            "/twilio/sms",
            requests,
            s.e2e_texts,
            lambda: posts(redis),
            wait_seconds=180,
        )
        out["inbox_left"] = int(redis.llen("kb:inbox"))
        out["failed_jobs"] = failed_jobs(kb.redis_server.url)
        out["texters_registered_beforehand"] = len(numbers)
        out["registering_seconds"] = round(registered, 1)
        out["workers"] = s.workers
        out["redis"] = "AOF appendfsync always (as make run)"
        return out


def returning(ctx: Context) -> dict[str, Any]:
    """Kabootar's end-to-end run with returning texters, once per bench run (the first-time
    texters' scenario compares with it)."""
    if "e2e_returning" not in ctx.shared:
        ctx.shared["e2e_returning"] = _kabootar(ctx)
    return dict(ctx.shared["e2e_returning"])


def failed_jobs(url: str) -> int:
    """Jobs RQ marked failed on Kabootar's queues (they would hold texts back)."""
    raw = Redis.from_url(url)
    return sum(int(raw.zcard(f"rq:failed:{q}")) for q in ("kb-inbound", "kb-replies", "kb-fanout"))


def _tutorial(ctx: Context, label: str, worker_class: str | None, n: int) -> dict[str, Any]:
    assert ctx.baseline is not None
    ctx.requests("ingest", ctx.settings.ingest_requests)  # the texts offered are slices of it
    with ctx.fleet(f"e2e-tutorial-{label}") as fleet:
        redis_server = start_redis(fleet, "redis", durable=True)
        peer = start_peer(
            fleet,
            ctx.baseline,
            "app",
            ctx.signed_url,
            redis=redis_server,
            worker_class=worker_class,
            with_worker=True,
        )
        redis = redis_server.client()
        warm = ctx.slice("ingest", 0, 20)
        warm_up(peer.base_url, warm, "/sms")
        if not wait_until(lambda: redis.llen("feed") >= 20, 60, fleet):
            raise RuntimeError(f"the tutorial's worker made no feed entries (see {fleet.logs})")
        offered = ctx.slice("ingest", 20, n)
        out = offer(
            ctx,
            fleet,
            peer.base_url,
            "/sms",
            offered,
            n,
            lambda: int(redis.llen("feed")),
            wait_seconds=n / 40 + 60,
        )
        out["worker"] = worker_class or "rq.Worker (default, forks per job)"
        out["redis"] = "AOF appendfsync always (same as Kabootar's)"
        return out


def run(ctx: Context) -> Section:
    s = ctx.settings
    section = Section()
    figures: dict[str, Any] = {"kabootar": returning(ctx)}
    if ctx.baseline is not None:
        figures["tutorial_forking"] = _tutorial(ctx, "forking", None, s.e2e_fork_texts)
        figures["tutorial_simple"] = _tutorial(ctx, "simple", "rq.worker.SimpleWorker", s.e2e_simple_texts)
    section.raw = figures
    section.profiles = _profile(ctx)

    kb = figures["kabootar"]
    fork = figures.get("tutorial_forking", {}).get("rate_per_s")
    simple = figures.get("tutorial_simple", {}).get("rate_per_s")
    ratio = kb["rate_per_s"] / fork if fork else None
    passed = kb["all_visible"] and kb["rate_per_s"] >= TARGET_RATE
    if ratio is not None:
        passed = passed and ratio >= TARGET_TIMES_TUTORIAL
    note = f"{kb['visible']:,} of {kb['offered']:,} texts visible in {kb['seconds_until_last_visible']:.1f}s"
    note += f"; wrk offered them in {kb['seconds_wrk_took_to_offer']:.1f}s; {s.workers} workers"
    if not kb["all_visible"]:
        note += "; NOT ALL VISIBLE"
    section.rows.append(
        Row(
            "2 end to end",
            f"texts/s webhook → /api/v1/posts, {kb['offered']:,} offered",
            kb["rate_per_s"],
            "/s",
            peers={"tutorial fork": fork, "tutorial Simple": simple} if ctx.baseline else {},
            ratio=ratio,
            ratio_of="of fork",
            target=f"≥ {TARGET_RATE:,.0f}/s and ≥ {TARGET_TIMES_TUTORIAL:.0f}× fork",
            passed=passed,
            note=note,
        )
    )
    return section


def _profile(ctx: Context) -> dict[str, object]:
    """py-spy on the web and every worker while profile_texts go through end to end."""
    s = ctx.settings
    profiler = Profiler(ctx.out / "profiles")
    if not profiler.available:
        return {"note": "py-spy is not installed (the bench extra): no profile"}
    ctx.requests("profile", s.profile_lines)
    with ctx.fleet("e2e-profile") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=s.workers, durable=True)
        redis = kb.redis
        numbers = signed.senders(SENDERS["warm"], s.warm_texts) + signed.senders(
            SENDERS["profile"], s.profile_texts
        )
        register(redis, kb.vault, numbers)
        warm_up(kb.base_url, ctx.requests("warm", s.warm_texts), "/twilio/sms")
        wait_until(lambda: posts(redis) >= s.warm_texts, 60, fleet)
        assert kb.web is not None
        try:
            profiler.attach("e2e-web", kb.web.pid, subprocesses=True)
            for worker in kb.workers:
                profiler.attach("e2e-worker", worker.pid)
            time.sleep(1.0)
            offered = ctx.slice("profile", 0, s.profile_texts)
            out = offer(
                ctx,
                fleet,
                kb.base_url,
                "/twilio/sms",
                offered,
                s.profile_texts,
                lambda: posts(redis),
                wait_seconds=120,
            )
        finally:
            summaries = profiler.finish()
    return {**summaries, "e2e_rate_while_profiled": out["rate_per_s"]}
