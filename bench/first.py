"""Scenario 2b, first-time texters: end to end when every text comes from a number Kabootar
has never seen, as most texts do in a crisis.

Kabootar runs as in scenario 2 (durable Redis, web, WORKERS workers, the built-in Twilio
simulator as the far end), but nobody is registered beforehand: each of the N texts
registers its sender under a new handle and queues a welcome SMS, which the workers send
while the texts keep coming. The figure is N over the time from wrk's start until the
N-th post is in the public timeline, as a ratio of the returning texters' rate measured
in the same run (scenario 2's, or a run of it made here when scenario 2 is left out).
"""

from __future__ import annotations

from typing import Any

from bench import e2e, signed
from bench.common import posts, register, wait_until, warm_up
from bench.context import SENDERS, Context
from bench.report import Row, Section
from bench.stacks import start_kabootar
from gateway.store import keys

TARGET_RATIO = 0.7
WELCOME_TIMEOUT = 300.0


def _first_time(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    requests = ctx.requests("first", s.e2e_texts)
    warm = ctx.requests("warm", s.warm_texts)
    with ctx.fleet("first-time") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=s.workers, durable=True, sms_mps="0")
        redis = kb.redis
        # The warm-up's texters are known ones, so only the measured texts are first ones.
        register(redis, kb.vault, signed.senders(SENDERS["warm"], s.warm_texts))
        warm_up(kb.base_url, warm, "/twilio/sms")
        if not wait_until(lambda: posts(redis) >= s.warm_texts, 60, fleet):
            raise RuntimeError(f"warm-up texts did not become posts (see {fleet.logs})")
        out = e2e.offer(
            ctx, fleet, kb.base_url, "/twilio/sms", requests, s.e2e_texts, lambda: posts(redis), 180
        )
        welcomed = wait_until(
            lambda: int(redis.hget(keys.OUTBOUND_STATS, "sent") or 0) >= s.e2e_texts,
            WELCOME_TIMEOUT,
            fleet,
            0.2,
        )
        out["welcomes_sent"] = int(redis.hget(keys.OUTBOUND_STATS, "sent") or 0)
        out["all_welcomed"] = welcomed
        out["subscribers"] = int(redis.get(keys.SUBSCRIBER_SEQ) or 0)
        out["failed_jobs"] = e2e.failed_jobs(kb.redis_server.url)
        out["workers"] = s.workers
        return out


def run(ctx: Context) -> Section:
    returning = e2e.returning(ctx)
    first = _first_time(ctx)
    section = Section(raw={"first_time": first, "returning": returning})
    ratio = first["rate_per_s"] / returning["rate_per_s"] if returning.get("rate_per_s") else None
    note = f"{first['visible']:,} of {first['offered']:,} posts from new numbers visible"
    note += f" in {first['seconds_until_last_visible']:.1f}s; {first['welcomes_sent']:,} welcome SMS sent"
    if not first["all_visible"]:
        note += "; NOT ALL VISIBLE"
    section.rows.append(
        Row(
            "2 end to end",
            f"first-time texters: texts/s webhook → /api/v1/posts, {first['offered']:,} offered",
            first["rate_per_s"],
            "/s",
            peers={"returning texters": returning.get("rate_per_s")},
            ratio=ratio,
            ratio_of="of returning",
            target=f"≥ {TARGET_RATIO:g}× returning",
            passed=ratio is not None
            and first["all_visible"]
            and first["all_welcomed"]
            and ratio >= TARGET_RATIO,
            note=note,
        )
    )
    return section
