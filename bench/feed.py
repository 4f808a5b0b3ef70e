"""Scenario 4, feed reads: `/` and `/api/v1/posts` with 1,000,000 posts stored; memory per post.

The posts are made with Kabootar's own `posts.create_many` (pipelined, in chunks, from
two loader processes), as texted posts: a 140-character body (English or Persian, half
of them tagged), an author among `feed_authors` registered texters, a MessageSid. Redis
`used_memory` before and after loading, divided by the count, is the memory per post;
MEMORY USAGE of sample keys splits it up. Then wrk GETs each page with -t2 -c32 --latency.
Redis runs without its append-only file here: reads never touch the disk, and a million
fsynced writes would only make loading slow.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from redis import Redis

from bench import wrk
from bench.common import register
from bench.context import Context
from bench.profile import Profiler
from bench.report import Row, Section
from bench.stacks import start_kabootar
from gateway.microblog import posts
from gateway.store import keys

CHUNK = 2_000
LOADERS = 2
TARGET_P99_MS, TARGET_API_RPS, TARGET_BYTES = 20.0, 1500.0, 1024.0
_EN = "Crowds at Azadi square now, police on Enghelab street, phones work but internet is down "
_FA = "جمعیت زیادی در میدان آزادی است، پلیس در خیابان انقلاب، تلفن کار می‌کند ولی اینترنت قطع است "


def body(i: int) -> str:
    """Post number i's text: exactly 140 characters; every other one carries #Iranelection."""
    base = (_FA if i % 4 >= 2 else _EN) * 3
    tag = "#Iranelection " if i % 2 == 0 else ""
    head = f"{tag}{i} "
    return (head + base)[:140]


def load(url: str, first: int, count: int, authors: list[int]) -> int:
    """Make posts first … first + count − 1 (a loader process's share)."""
    redis = Redis.from_url(url, decode_responses=True, socket_timeout=120)
    now = time.time()
    made = 0
    for start in range(first, first + count, CHUNK):
        batch = [
            posts.NewPost(
                body=body(i),
                source="sms",
                author_id=authors[i % len(authors)],
                message_sid="SM" + uuid.uuid4().hex,
                created_at=now - (first + count - i),
            )
            for i in range(start, min(start + CHUNK, first + count))
        ]
        made += len(posts.create_many(redis, batch))
    return made


def _breakdown(redis: Redis, count: int) -> dict[str, Any]:
    """Bytes per post by kind of key, from MEMORY USAGE of samples."""
    top = int(str(redis.zrevrange(keys.TIMELINE_ALL, 0, 0)[0]))
    sample = [top - i * max(1, count // 200) for i in range(200) if top - i * max(1, count // 200) > 0]
    pipe = redis.pipeline(transaction=False)
    for post_id in sample:
        pipe.memory_usage(keys.post(post_id))
        pipe.hget(keys.post(post_id), "sid")
        pipe.object("encoding", keys.post(post_id))
    results = pipe.execute()
    hashes, sids, encodings = results[0::3], results[1::3], results[2::3]
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.memory_usage(keys.seen_message(sid))
    seen = pipe.execute()
    tag = keys.timeline_tag("iranelection")
    return {
        "redis": {k: v for k, v in redis.info("server").items() if k in ("redis_version",)}
        | {"mem_allocator": redis.info("memory").get("mem_allocator")},
        "post_hash_if_listpack": _as_listpack(redis, sample[:50]),
        "post_hash": sum(hashes) / len(hashes),
        # Redis keeps a small hash as a compact listpack, and switches to a real hash table
        # when any value is longer than hash-max-listpack-value (hash-max-ziplist-value in
        # Redis 6; 64 bytes by default).
        "post_hash_encodings": dict(Counter(encodings)),
        "hash_limits": redis.config_get("hash-max-*"),
        "messagesid_marker": sum(seen) / len(seen),
        "timeline_all_per_entry": (redis.memory_usage(keys.TIMELINE_ALL) or 0) / count,
        "tag_timeline_per_tagged_post": (redis.memory_usage(tag) or 0) / max(1, redis.zcard(tag)),
        "note": "MEMORY USAGE samples; user timelines and Redis' key table overhead are the rest",
    }


def _as_listpack(redis: Redis, post_ids: list[int]) -> float:
    """Mean MEMORY USAGE of copies of these post hashes made while Redis allows listpacks
    (ziplists) with values up to 1 KiB: what the posts would take with that setting."""
    names = ("hash-max-ziplist-value", "hash-max-listpack-value")
    before = redis.config_get("hash-max-*")
    name = next((n for n in names if n in before), names[0])
    redis.config_set(name, 1024)
    try:
        sizes = []
        for post_id in post_ids:
            copy = "bench:listpack-probe"
            redis.delete(copy)
            fields: dict[str, str] = redis.hgetall(keys.post(post_id))  # type: ignore[assignment]
            redis.hset(copy, mapping=fields)  # type: ignore[arg-type]
            sizes.append(redis.memory_usage(copy) or 0)
            redis.delete(copy)
    finally:
        redis.config_set(name, str(before[name]))
    return sum(sizes) / len(sizes) if sizes else 0.0


def _profile(ctx: Context, base_url: str, web_pid: int) -> dict[str, Any]:
    """py-spy on the web workers through a short extra wrk run on /api/v1/posts (after the
    measured ones, so the figures above were not taken under the profiler)."""
    profiler = Profiler(ctx.out / "profiles")
    if not profiler.available or not web_pid:
        return {}
    try:
        profiler.attach("feed-api-web", web_pid, subprocesses=True)
        time.sleep(1.0)
        wrk.run(base_url + "/api/v1/posts", ctx.settings.profile_seconds)
    finally:
        summaries = profiler.finish()
    return summaries


def run(ctx: Context) -> Section:
    s = ctx.settings
    figures: dict[str, Any] = {
        "posts": s.feed_posts,
        "authors": s.feed_authors,
        "redis": "no AOF (reads only)",
    }
    with ctx.fleet("feed-kabootar") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=0, durable=False)
        redis = kb.redis
        authors = register(redis, kb.vault, [f"+98937{i:07d}" for i in range(s.feed_authors)])
        redis.execute_command("MEMORY", "PURGE")
        before = int(redis.info("memory")["used_memory"])
        t = time.time()
        share = s.feed_posts // LOADERS
        with ProcessPoolExecutor(LOADERS) as pool:
            jobs = [
                pool.submit(
                    load,
                    kb.redis_server.url,
                    k * share,
                    share if k < LOADERS - 1 else s.feed_posts - k * share,
                    authors,
                )
                for k in range(LOADERS)
            ]
            made = sum(j.result() for j in jobs)
        figures["load_seconds"] = round(time.time() - t, 1)
        figures["made"] = made
        figures["in_timeline"] = int(redis.zcard(keys.TIMELINE_ALL))
        after = int(redis.info("memory")["used_memory"])
        figures["used_memory_before"] = before
        figures["used_memory_after"] = after
        figures["bytes_per_post"] = (after - before) / made
        figures["breakdown_bytes"] = _breakdown(redis, made)
        log = ctx.out / "logs" / "feed-kabootar" / "wrk.log"
        # The newest page is answered from memory while it is current (web/feed/fast.py);
        # an older page (a cursor in the query) is read from Redis and rendered every time.
        older = int(str(redis.zrevrange(keys.TIMELINE_ALL, made // 2, made // 2)[0]))
        reads = (("home", "/"), ("api", "/api/v1/posts"), ("api_older", f"/api/v1/posts?before={older}"))
        for name, path in reads:
            result = wrk.run(kb.base_url + path, s.feed_seconds, log=log)
            figures[name] = result.as_dict()
        profiles = _profile(ctx, kb.base_url, kb.web.pid if kb.web else 0)
    section = Section(raw=figures, profiles=profiles)
    note = f"{figures['in_timeline']:,} posts stored, loaded in {figures['load_seconds']:.0f}s"
    for name, label, rps_target in (("home", "/", None), ("api", "/api/v1/posts", TARGET_API_RPS)):
        r = figures[name]
        errors = r["non_2xx_3xx"] + sum(r["socket_errors"].values())
        extra = f"; {errors} errors" if errors else ""
        section.rows.append(
            Row(
                "4 feed reads",
                f"GET {label}: requests/s",
                r["rps"],
                "/s",
                target=f"≥ {rps_target:,.0f}/s" if rps_target else "",
                passed=(r["rps"] >= rps_target and not errors) if rps_target else None,
                note=note + extra,
            )
        )
        p99 = r["latency_ms"].get("p99")
        section.rows.append(
            Row(
                "4 feed reads",
                f"GET {label}: p99 (-c32)",
                p99,
                "ms",
                target=f"≤ {TARGET_P99_MS:.0f} ms",
                passed=None if p99 is None else p99 <= TARGET_P99_MS,
            )
        )
    older = figures["api_older"]
    section.rows.append(
        Row(
            "4 feed reads",
            "GET /api/v1/posts?before=… (an older page, read and rendered each time): req/s, p99",
            older["rps"],
            "/s",
            note=f"p99 {older['latency_ms'].get('p99')} ms; what a page costs when memory cannot answer",
        )
    )
    per_post = figures["bytes_per_post"]
    section.rows.append(
        Row(
            "4 feed reads",
            "Redis memory per 140-character post",
            per_post,
            "B",
            target=f"≤ {TARGET_BYTES:.0f} B",
            passed=per_post <= TARGET_BYTES,
            note="INFO used_memory after − before, ÷ posts; includes the 7-day MessageSid marker",
        )
    )
    return section
