"""Scenario 1, ingest: signed webhooks per second answered 200 and durably stored.

Each app gets the same pre-signed requests (unique MessageSid each) from wrk with the
baseline's wrk_post.lua, `-t2 -c32`, after a warm-up. Kabootar runs `kabootar web`
with no workers, so every text it acknowledged must still be in its inbox afterwards;
the tutorial's acknowledged texts must be RQ jobs in its queue. Both use a Redis with
the append-only file fsynced on every write (as `make run`); an extra, informational
run shows Kabootar with that file off, i.e. what the fsync costs. Beside them, the
no-op app (signature check only) is the ceiling. Then, on a fresh Kabootar, py-spy
samples the web workers under the same load for the ingest profile. Kabootar runs under
its default web server (Granian) and, in an informational row, under gunicorn, which the
peers run under: the ratio to the no-op stays against that gunicorn ceiling, so the table
shows what the default server bought.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis

from bench import signed, wrk
from bench.common import cores, cpu_delta, warm_up
from bench.context import Context
from bench.profile import Profiler
from bench.report import Row, Section
from bench.stacks import ANDROID_SIGNING_KEY, start_kabootar, start_peer, start_redis
from gateway.config import DEFAULT_WEB_SERVER
from gateway.store import keys

TARGET_RATIO = 0.8
RQ_QUEUE = "rq:queue:inbound"  # the tutorial's queue: one job id per acknowledged text


def _script(ctx: Context) -> tuple[Path, str]:
    """The baseline's wrk_post.lua when it is there, else ours (same format, never wraps)."""
    if ctx.baseline is not None:
        return ctx.baseline / "wrk_post.lua", "baseline wrk_post.lua"
    return wrk.SEND_ONCE, "bench/wrk_send.lua"


def _measure(
    ctx: Context,
    base_url: str,
    path: str,
    cpu: Callable[[], dict[str, float]],
    stored: Callable[[], int],
    requests: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """wrk for ingest_seconds; what was answered, what was stored, and the CPU it took.
    `requests`: another (request file, wrk script) than the Twilio webhooks."""
    script, requests_file = (_script(ctx)[0], ctx.requests("ingest", ctx.settings.ingest_requests))
    if requests is not None:
        requests_file, script = requests
    env = {"REQS": str(requests_file), "PATH_SMS": path}
    stored0, cpu0 = stored(), cpu()
    result = wrk.run(
        base_url, ctx.settings.ingest_seconds, script=script, env=env, log=ctx.out / "logs" / "ingest-wrk.log"
    )
    time.sleep(0.5)  # requests wrk abandoned at the bell finish on the server
    used = cpu_delta(cpu0, cpu())
    used["wrk"] = round(result.cpu_seconds, 2)
    kept = stored() - stored0
    return {
        "wrk": result.as_dict(),
        "answered_2xx_per_s": result.ok / result.seconds,
        "answered_2xx": result.ok,
        "stored": kept,
        "lost": max(0, result.ok - kept),
        "cpu_seconds": used,
        "cores_busy": cores(used, result.seconds),
    }


def _kabootar_stored(redis: Redis) -> int:
    """Texts Kabootar holds: waiting in the inbox, or already posts."""
    return int(redis.llen(keys.INBOX)) + int(redis.zcard(keys.TIMELINE_ALL))


def _kabootar(
    ctx: Context, durable: bool, server: str = DEFAULT_WEB_SERVER, replicas: int = 0
) -> dict[str, Any]:
    name = "ingest-kabootar" + ("" if durable else "-no-aof")
    name += "" if server == DEFAULT_WEB_SERVER else f"-{server}"
    name += f"-{replicas}-replicas" if replicas else ""
    with ctx.fleet(name) as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=0, durable=durable, server=server, replicas=replicas)
        warm_up(kb.base_url, ctx.requests("warm", ctx.settings.warm_texts), "/twilio/sms")
        redis = kb.redis
        out = _measure(ctx, kb.base_url, "/twilio/sms", fleet.cpu_by_role, lambda: _kabootar_stored(redis))
    out["redis"] = "AOF appendfsync always (as make run)" if durable else "AOF off"
    if replicas:
        out["redis"] += f"; {replicas} replicas, each webhook waits for one (REDIS_WAIT_REPLICAS=1)"
    out["server"] = server
    return out


def _kabootar_android(ctx: Context) -> dict[str, Any]:
    """The same, through the Android phone's webhook (JSON, HMAC of body and timestamp)."""
    requests = ctx.out / "requests" / "ingest-android.txt"
    with ctx.fleet("ingest-kabootar-android") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=0, durable=True, providers="twilio,android")
        warm_up(kb.base_url, ctx.requests("warm", ctx.settings.warm_texts), "/twilio/sms")
        signed.write_android(requests, ANDROID_SIGNING_KEY, ctx.settings.ingest_requests, 5_000_000)
        redis = kb.redis
        out = _measure(
            ctx,
            kb.base_url,
            "/android/webhook",
            fleet.cpu_by_role,
            lambda: _kabootar_stored(redis),
            requests=(requests, wrk.ANDROID),
        )
    out["redis"] = "AOF appendfsync always (as make run)"
    return out


def _peer(ctx: Context, label: str, module: str) -> dict[str, Any]:
    assert ctx.baseline is not None
    with ctx.fleet(f"ingest-{label}") as fleet:
        server = start_redis(fleet, "redis", durable=True) if module == "app" else None
        peer = start_peer(fleet, ctx.baseline, module, ctx.signed_url, redis=server)
        warm_up(peer.base_url, ctx.requests("warm", ctx.settings.warm_texts), "/sms")
        client = server.client() if server else None
        out = _measure(
            ctx, peer.base_url, "/sms", fleet.cpu_by_role, lambda: int(client.llen(RQ_QUEUE)) if client else 0
        )
    if client is None:
        out["stored"] = out["lost"] = None  # the ceiling stores nothing
    out["redis"] = "AOF appendfsync always (same as Kabootar's)" if server else "none"
    return out


def run(ctx: Context) -> Section:
    s = ctx.settings
    figures: dict[str, dict[str, Any]] = {}
    if ctx.baseline is not None:
        figures["noop"] = _peer(ctx, "noop", "noop_app")
        figures["tutorial"] = _peer(ctx, "tutorial", "app")
    figures["kabootar"] = _kabootar(ctx, durable=True)
    figures["kabootar_aof_off"] = _kabootar(ctx, durable=False)
    figures["kabootar_gunicorn"] = _kabootar(ctx, durable=True, server="gunicorn")
    figures["kabootar_android"] = _kabootar_android(ctx)
    figures["kabootar_replicated"] = _kabootar(ctx, durable=True, replicas=2)
    section = Section(raw={"apps": figures, "script": _script(ctx)[1], "wrk": "-t2 -c32 --latency"})
    section.raw["requests_file_lines"] = s.ingest_requests
    section.profiles = _profile(ctx)

    kb = figures["kabootar"]
    noop = figures.get("noop", {}).get("answered_2xx_per_s")
    tutorial = figures.get("tutorial", {}).get("answered_2xx_per_s")
    notes = [f"stored {kb['stored']:,} of {kb['answered_2xx']:,} answered (inbox)"]
    if kb["lost"]:
        notes.append(f"LOST {kb['lost']} acknowledged texts")
    if any(f["answered_2xx"] >= s.ingest_requests for f in figures.values()):
        notes.append("the request file ran out: some MessageSids were sent twice")
    notes.append("Redis AOF fsync always (Kabootar and tutorial)")
    notes.append(f"Kabootar under {DEFAULT_WEB_SERVER} (the default), the peers under gunicorn -w 2")
    if ctx.baseline is None:
        notes.insert(0, "peers skipped: no baseline folder")
    ratio = kb["answered_2xx_per_s"] / noop if noop else None
    peers = {"noop": noop, "tutorial": tutorial} if ctx.baseline else {}
    section.rows.append(
        Row(
            "1 ingest",
            "signed webhooks/s answered 200 and stored",
            kb["answered_2xx_per_s"],
            "/s",
            peers=peers,
            ratio=ratio,
            ratio_of="of noop",
            target=f"≥ {TARGET_RATIO} × noop",
            passed=None if ratio is None else ratio >= TARGET_RATIO and not kb["lost"],
            note="; ".join(notes),
        )
    )
    rate = kb["answered_2xx_per_s"]
    gunicorn, replicated, phone = (
        figures[k] for k in ("kabootar_gunicorn", "kabootar_replicated", "kabootar_android")
    )
    p99, p99_single = replicated["wrk"]["latency_ms"].get("p99"), kb["wrk"]["latency_ms"].get("p99")
    section.rows += [
        _variant(
            "same, Redis AOF off (what fsync costs; informational)",
            figures["kabootar_aof_off"],
            noop,
            "of noop",
        ),
        _variant(
            "same, WEB_SERVER=gunicorn (2 processes × 8 threads, as Granian): what the default bought",
            gunicorn,
            noop,
            "of noop",
            f"Granian's is {rate / gunicorn['answered_2xx_per_s']:.2f} × gunicorn's in this run",
        ),
        _variant(
            "same, replicated as `make ha` (2 replicas, 200 only once one has it): the cost of HA",
            replicated,
            rate,
            "of one Redis",
            f"p99 {p99} ms against {p99_single} ms with one Redis",
        ),
        _variant(
            "same, through the Android phone's webhook (signed JSON)",
            phone,
            rate,
            "of Twilio's",
            f"stored {phone['stored']:,} of {phone['answered_2xx']:,} answered",
        ),
    ]
    section.rows.append(
        Row(
            "1 ingest",
            "webhook latency p99 under that load (wrk)",
            kb["wrk"]["latency_ms"].get("p99"),
            "ms",
            peers={
                k: v["wrk"]["latency_ms"].get("p99") for k, v in figures.items() if k in ("noop", "tutorial")
            },
        )
    )
    return section


def _variant(measure: str, variant: dict[str, Any], of: float | None, ratio_of: str, note: str = "") -> Row:
    """An informational row: a variant of Kabootar's ingest, as a ratio of `of` (a figure of
    the same run); acknowledged texts it lost are always noted."""
    lost = f"LOST {variant['lost']}" if variant["lost"] else ""
    return Row(
        "1 ingest",
        measure,
        variant["answered_2xx_per_s"],
        "/s",
        ratio=variant["answered_2xx_per_s"] / of if of else None,
        ratio_of=ratio_of,
        note="; ".join(n for n in (note, lost) if n),
    )


def _profile(ctx: Context) -> dict[str, object]:
    """py-spy on Kabootar's web workers while wrk offers texts for profile_seconds."""
    s = ctx.settings
    profiler = Profiler(ctx.out / "profiles")
    if not profiler.available:
        return {"note": "py-spy is not installed (the bench extra): no profile"}
    ctx.requests("profile", s.profile_lines)
    offered = ctx.slice("profile", s.profile_texts, s.profile_lines - s.profile_texts)
    with ctx.fleet("ingest-profile") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=0, durable=True)
        warm_up(kb.base_url, ctx.requests("warm", s.warm_texts), "/twilio/sms")
        assert kb.web is not None
        try:
            profiler.attach("ingest-web", kb.web.pid, subprocesses=True)
            time.sleep(1.0)  # py-spy attaches
            env = {"REQS": str(offered), "PATH_SMS": "/twilio/sms"}
            result = wrk.run(kb.base_url, s.profile_seconds, script=wrk.SEND_ONCE, env=env)
        finally:
            summaries = profiler.finish()
    return {**summaries, "ingest_rps_while_profiled": result.rps}
