"""Scenario 5, capacity: what one text and one fan-out SMS cost the Redis primary, and from
that how far one primary goes (the plan for a crisis that outgrows one box).

Kabootar runs as `make run` does (durable Redis, web, WORKERS workers), but "Twilio" (the
simulator) runs apart, as Twilio is: its own `kabootar web` against its own Redis, named by
TWILIO_API_BASE_URL, so Kabootar's Redis counts only Kabootar's work. Each phase reads
`INFO commandstats` (commands, those run inside scripts included) and `INFO cpu`
(used_cpu_sys + used_cpu_user) of Kabootar's Redis, and the CPU time of its web and worker
processes, before and after:

- texts: N returning texters' texts, webhook → post; then N first-time texters' (a new
  handle and a welcome SMS each, sent and reported on);
- fan-out: one post to F followers, from the webhook until Twilio reported every SMS
  delivered (status callbacks included).

The projected ceiling is one core of Redis (it runs commands on one thread) divided by
the cost of one text or SMS; the cores the web and worker processes need to reach it are
their CPU per text or SMS times that rate.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from bench import signed
from bench.common import posts, register, send_once, wait_until, warm_up
from bench.context import SENDERS, Context
from bench.fanout import AUTHOR, _followers, _text
from bench.procs import Fleet, wait_http
from bench.report import Row, Section
from bench.stacks import SECRET_KEY, Kabootar, clean_env, start_kabootar, start_redis
from gateway.box import embedded_redis
from gateway.store import keys


def _redis_counters(redis: Redis) -> tuple[int, float]:
    """Commands Redis has run so far, and its CPU seconds."""
    commands = sum(int(v["calls"]) for v in redis.info("commandstats").values())
    cpu = redis.info("cpu")
    return commands, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _measure(fleet: Fleet, redis: Redis, n: int, work: Callable[[], None]) -> dict[str, Any]:
    """Run `work` (n texts or SMS) and return what each one cost Redis and our processes."""
    commands0, cpu0 = _redis_counters(redis)
    procs0 = fleet.cpu_by_role()
    started = time.time()
    work()
    seconds = time.time() - started
    commands1, cpu1 = _redis_counters(redis)
    procs1 = fleet.cpu_by_role()
    used = {role: procs1[role] - procs0.get(role, 0.0) for role in ("web", "worker") if role in procs1}
    return {
        "count": n,
        "seconds": round(seconds, 2),
        "redis_commands_each": round((commands1 - commands0) / n, 1),
        "redis_cpu_us_each": round((cpu1 - cpu0) * 1e6 / n, 1),
        "web_cpu_ms_each": round(used.get("web", 0.0) * 1e3 / n, 3),
        "worker_cpu_ms_each": round(used.get("worker", 0.0) * 1e3 / n, 3),
    }


def project(cost: dict[str, Any]) -> dict[str, float | None]:
    """One Redis core's worth of these, per second, and the web and worker cores it takes."""
    each = cost["redis_cpu_us_each"]
    if not each:
        return {"per_s": None, "web_cores": None, "worker_cores": None}
    rate = 1e6 / each
    return {
        "per_s": round(rate),
        "web_cores": round(rate * cost["web_cpu_ms_each"] / 1e3, 1),
        "worker_cores": round(rate * cost["worker_cpu_ms_each"] / 1e3, 1),
    }


def _start_twilio(fleet: Fleet) -> str:
    """The Twilio simulator on its own web process and Redis, as a remote Twilio would be."""
    server = start_redis(fleet, "twilio-redis", durable=False)
    port = embedded_redis.free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_URL=base,
        REDIS_URL=server.url,
        SECRET_KEY=SECRET_KEY,  # the same simulated credentials as Kabootar's
        SIMULATOR="1",
        KABOOTAR_VAR_DIR=str(server.data_dir / "var"),
    )
    fleet.start("twilio", "twilio-web", [sys.executable, "-m", "gateway.box.cli", "web"], env)
    wait_http(base + "/healthz", fleet)
    return base + "/dev/twilio"


def _texts(ctx: Context, fleet: Fleet, kb: Kabootar, name: str, known: bool) -> dict[str, Any]:
    """N texts through the webhook until they are posts (and, from new numbers, welcomed)."""
    n, redis = ctx.settings.capacity_texts, kb.redis
    requests = ctx.requests(name, n)
    if known:
        register(redis, kb.vault, signed.senders(SENDERS[name], n))
    base_posts, base_sent = posts(redis), int(redis.hget(keys.OUTBOUND_STATS, "delivered") or 0)

    def work() -> None:
        send_once(kb.base_url, requests, "/twilio/sms", seconds=max(30.0, n / 200))
        if not wait_until(lambda: posts(redis) - base_posts >= n, 180, fleet):
            raise RuntimeError(f"{name}: not every text was posted")
        if not known:  # each welcome sent and reported delivered: part of a first text's cost
            welcomed = lambda: int(redis.hget(keys.OUTBOUND_STATS, "delivered") or 0) - base_sent >= n  # noqa: E731
            if not wait_until(welcomed, 300, fleet, every=0.2):
                raise RuntimeError(f"{name}: not every welcome was delivered")

    return _measure(fleet, redis, n, work)


def _fanout(ctx: Context, fleet: Fleet, kb: Kabootar) -> dict[str, Any]:
    f, redis = ctx.settings.capacity_followers, kb.redis
    _followers(kb, f)
    base = int(redis.hget(keys.OUTBOUND_STATS, "delivered") or 0)

    def work() -> None:
        _text(kb)
        done = lambda: int(redis.hget(keys.OUTBOUND_STATS, "delivered") or 0) - base >= f  # noqa: E731
        if not wait_until(done, ctx.settings.fanout_timeout * 2, fleet, every=0.1):
            raise RuntimeError("fan-out: not every SMS was reported delivered")

    return _measure(fleet, redis, f, work)


def run(ctx: Context) -> Section:
    s = ctx.settings
    with ctx.fleet("capacity") as fleet:
        twilio = _start_twilio(fleet)
        kb = start_kabootar(
            fleet, ctx.port, workers=s.workers, durable=True, sms_mps="0", TWILIO_API_BASE_URL=twilio
        )
        warm = ctx.requests("warm", s.warm_texts)
        register(kb.redis, kb.vault, signed.senders(SENDERS["warm"], s.warm_texts) + [AUTHOR])
        warm_up(kb.base_url, warm, "/twilio/sms")
        wait_until(lambda: posts(kb.redis) >= s.warm_texts, 60, fleet)
        costs = {
            "text_returning": _texts(ctx, fleet, kb, "capacity", known=True),
            "text_first_time": _texts(ctx, fleet, kb, "capacity-first", known=False),
            "fanout_sms": _fanout(ctx, fleet, kb),
        }
    ceilings = {name: project(cost) for name, cost in costs.items()}
    section = Section(raw={"costs": costs, "ceilings": ceilings, "redis": "AOF appendfsync always"})
    labels = {
        "text_returning": ("text, returning texter", "texts/s"),
        "text_first_time": ("text, first-time texter (+ welcome SMS)", "texts/s"),
        "fanout_sms": ("fan-out SMS (+ 2 status callbacks)", "SMS/s"),
    }
    for name, (what, unit) in labels.items():
        cost, ceiling = costs[name], ceilings[name]
        section.rows.append(
            Row(
                "5 capacity",
                f"Redis CPU µs per {what}",
                cost["redis_cpu_us_each"],
                "µs",
                note=f"{cost['redis_commands_each']:g} commands each",
            )
        )
        section.rows.append(
            Row(
                "5 capacity",
                f"one Redis primary's ceiling, {unit} ({what})",
                ceiling["per_s"],
                "/s",
                note=f"needs ~{ceiling['web_cores']} web + {ceiling['worker_cores']} worker cores",
            )
        )
    for line in _plan(costs, ceilings):
        print(line, flush=True)
    return section


def _plan(costs: dict[str, Any], ceilings: dict[str, Any]) -> list[str]:
    """The capacity report as printed (and copied into the README's Capacity section)."""
    lines = ["", "capacity of one Redis primary (one core of commands):"]
    for name, cost in costs.items():
        c = ceilings[name]
        lines.append(
            f"  {name}: {cost['redis_commands_each']:g} commands, "
            f"{cost['redis_cpu_us_each']:g} µs Redis CPU, "
            f"{cost['web_cpu_ms_each']:g} ms web + {cost['worker_cpu_ms_each']:g} ms worker CPU each"
            f" → ceiling {c['per_s']}/s with ~{c['web_cores']} web + {c['worker_cores']} worker cores"
        )
    return lines
