"""Scenario 8, the console's message history: pages of /ops/api/messages and /ops/messages with
1,000,000 messages stored (the feed scenario's size); memory per message.

The history is filled directly, in pipelines from two loader processes (as the feed scenario
fills posts), with the records and index entries the intake script, the drain batch and the
outbox's scripts write (`gateway/store/history.py`): over the last 7 days, half texts
received (70 % posts, whose 140-character text lives in the post hash, the rest commands),
half SMS sent (90 % delivered, 5 % sent, 3 % failed, 2 % retried then delivered; 80 % Twilio,
20 % the Android phone), among `feed_authors` texters. One message in 50 says "curfew".

Then wrk (-t2, with an operator's session cookie) GETs a page of 50 rows, from 4
connections (a few operators at once: the console's load; the target) for: no filter; one
texter's handle; outcome=failed&provider=twilio; q=curfew (which fills no page within a
page's scan budget of 500 candidates: every request is the bounded worst case,
ending with "the search continues"); and the server-rendered /ops/messages; then the
unfiltered page from 32 connections (saturation: p99 is then mostly queueing). Memory per
message: MEMORY USAGE of sampled records (an SMS's is its outbox hash, which exists without
the history too) and of their intents' sets, plus every index key's, ÷ messages (the posts'
texts, loaded alongside, are the feed's). Redis runs without its append-only file: reads only.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import re
import time
import urllib.parse
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from redis import Redis

from bench import wrk
from bench.common import register
from bench.context import Context
from bench.report import Row, Section
from bench.stacks import start_kabootar
from gateway.ops import accounts
from gateway.store import history, keys

CHUNK = 2_000
LOADERS = 2
SPAN_SECONDS = 7 * 86400 - 3600  # the retention's 7 days, an hour short of the edge
TARGET_P99_MS = 100.0
OPERATORS = 4  # connections: a few operators at once
COOKIE_SCRIPT = Path(__file__).resolve().parent / "wrk_cookie.lua"
PASSWORD = "a bench operator's password"
_TEXT = "Crowds at Azadi square now, police on Enghelab street, phones work but internet is down " * 2


def _text(i: int) -> str:
    return (f"{i} " + ("curfew at nine, " if i % 50 == 0 else "") + _TEXT)[:140]


def _inbound(pipe: Any, i: int, t: float, sub: int, provider: str, days: int) -> None:
    sid, member = f"SM{i:032x}", history.inbound_id(f"SM{i:032x}")
    fields = {"at": f"{t:.3f}", "st": f"{t + 0.002:.3f}", "ch": provider, "cc": "+98", "sub": sub}
    names = [history.ALL, history.by_provider(provider), history.by_texter(sub)]
    if i % 10 < 7:
        pipe.hset(keys.post(i), mapping={"body": _text(i), "sub": sub})  # the post's text
        fields |= {"pr": f"{t + 0.4:.3f}", "res": "post", "post": i}
        names.append(history.by_outcome("post"))
    else:
        fields |= {"pr": f"{t + 0.4:.3f}", "res": "command", "cmd": "follow"}
        names.append(history.by_outcome("command"))
    pipe.hset(keys.history_inbound(sid), mapping=fields)
    pipe.expireat(keys.history_inbound(sid), history.expire_at(t, days))
    for name in names:
        pipe.zadd(history.index(t, name), {member: history.score(t)})


def _outbound(pipe: Any, i: int, t: float, sub: int, provider: str, days: int) -> None:
    mid = hashlib.md5(str(i).encode()).hexdigest()
    member, intent = history.outbound_id(mid), f"post:{i - 1}"
    n = i % 100
    status = "failed" if n < 3 else "sent" if n < 8 else "delivered"
    fields: dict[str, str | int] = {
        "r": sub, "body": _text(i - 1), "kind": "fanout", "force": "0", "intent": intent,
        "status": status, "attempts": 1, "created": f"{t:.3f}", "ch": provider, "pre": "",
        "t_go": f"{t + 0.3:.3f}", "via": provider, "sid": f"SM{i:032x}", "segments": 1,
        "updated": f"{t + 3:.3f}",
    }  # fmt: skip
    names = [history.ALL, history.by_texter(sub), history.by_provider(provider)]
    if status == "failed":
        fields |= {"t_done": f"{t + 0.5:.3f}", "oc": "invalid_number", "error": "21211"}
        names.append(history.by_outcome("failed"))
    else:
        fields["t_sent"] = f"{t + 0.5:.3f}"
    if status == "delivered":
        fields |= {"t_done": f"{t + 3:.3f}", "oc": "delivered"}
        names.append(history.by_outcome("delivered"))
    if 8 <= n < 10:
        fields["refused"] = 1
        names.append(history.by_outcome("retry"))
    pipe.hset(keys.outbound_message(mid), mapping=fields)
    pipe.expire(keys.outbound_message(mid), 14 * 86400)
    pipe.sadd(keys.history_sms_of(intent), mid)
    for name in names:
        pipe.zadd(history.index(t, name), {member: history.score(t)})


def load(url: str, first: int, count: int, total: int, authors: list[int], now: float) -> int:
    """Write messages first … first + count − 1 of `total`, spread over the last 7 days."""
    redis = Redis.from_url(url, decode_responses=True, socket_timeout=120)
    start = now - SPAN_SECONDS
    for begin in range(first, first + count, CHUNK):
        pipe = redis.pipeline(transaction=False)
        for i in range(begin, min(begin + CHUNK, first + count)):
            t = start + SPAN_SECONDS * i / total
            sub, provider = authors[(i // 2) % len(authors)], "android" if i % 5 == 4 else "twilio"
            (_inbound if i % 2 == 0 else _outbound)(pipe, i, t, sub, provider, 7)
        pipe.execute()
    return count


def _expire_indexes(redis: Redis, days: int = 7) -> None:
    """What the writers' EXPIREAT does on each write, once per index key."""
    pipe = redis.pipeline(transaction=False)
    for key in redis.scan_iter(keys.history_index(0, "*").replace(":0:", ":*:"), count=10_000):
        day = int(str(key).split(":")[3])
        pipe.expireat(key, (day + 1 + days) * 86400)
    pipe.execute()


def session_cookie(base_url: str, name: str, password: str) -> str:
    """Log in to the console as a browser does (CSRF token, then the form); the Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base_url + "/ops/login", timeout=10) as r:
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode())
    assert token, "the login page has no CSRF token"
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "name": name, "password": password})
    with opener.open(base_url + "/ops/login", data=form.encode(), timeout=10) as r:
        assert r.status == 200
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def run(ctx: Context) -> Section:
    s = ctx.settings
    total = s.feed_posts
    figures: dict[str, Any] = {"messages": total, "texters": s.feed_authors, "redis": "no AOF (reads only)"}
    with ctx.fleet("history-kabootar") as fleet:
        kb = start_kabootar(fleet, ctx.port, workers=0, durable=False)
        redis = kb.redis
        authors = register(redis, kb.vault, [f"+98938{i:07d}" for i in range(s.feed_authors)])
        handle = str(redis.hget(keys.subscriber(authors[0]), "handle"))
        now, t = time.time(), time.time()
        # The posts' texts first (the feed's, not the history's memory), then the history.
        share = total // LOADERS
        with ProcessPoolExecutor(LOADERS) as pool:
            counts = [share if k < LOADERS - 1 else total - k * share for k in range(LOADERS)]
            url = kb.redis_server.url
            jobs = [pool.submit(load, url, k * share, counts[k], total, authors, now) for k in range(LOADERS)]
            figures["loaded"] = sum(j.result() for j in jobs)
        _expire_indexes(redis)
        figures["load_seconds"] = round(time.time() - t, 1)
        figures["bytes_per_message"] = _bytes_per_message(redis, total)
        accounts.add_user(redis, "bench", PASSWORD)
        env = {"BENCH_COOKIE": session_cookie(kb.base_url, "bench", PASSWORD)}
        log = ctx.out / "logs" / "history-kabootar" / "wrk.log"
        queries = {
            "no filter": "/ops/api/messages",
            "handle": f"/ops/api/messages?handle={handle}",
            "failed via twilio": "/ops/api/messages?outcome=failed&provider=twilio",
            "q (bounded scan)": "/ops/api/messages?q=curfew",
            "HTML page": "/ops/messages",
        }
        runs = [(name, path, OPERATORS) for name, path in queries.items()]
        runs.append(("no filter, saturated", queries["no filter"], 32))
        for name, path, connections in runs:
            url = kb.base_url + path
            options = {"script": COOKIE_SCRIPT, "env": env, "log": log, "connections": connections}
            result = wrk.run(url, s.feed_seconds, **options)  # type: ignore[arg-type]
            figures[name] = {"path": path, "connections": connections, **result.as_dict()}
    section = Section(raw=figures)
    note = f"{total:,} messages over 7 days, loaded in {figures['load_seconds']:.0f}s"
    for name, _, connections in runs:
        r = figures[name]
        errors = r["non_2xx_3xx"] + sum(r["socket_errors"].values())
        p99 = r["latency_ms"].get("p99")
        targeted = connections == OPERATORS
        section.rows.append(
            Row(
                "8 message history",
                f"{name}: p99 (-c{connections}), {r['rps']:,.0f} req/s",
                p99,
                "ms",
                target=f"≤ {TARGET_P99_MS:.0f} ms" if targeted else "",
                passed=(None if p99 is None else p99 <= TARGET_P99_MS and not errors) if targeted else None,
                note=note + (f"; {errors} errors" if errors else ""),
            )
        )
    section.rows.append(
        Row(
            "8 message history",
            "Redis memory per message (record + indexes)",
            figures["bytes_per_message"]["total"],
            "B",
            note="MEMORY USAGE: records {records} B (an SMS's: its outbox hash) + indexes {indexes} B".format(
                **figures["bytes_per_message"]
            ),
        )
    )
    return section


def _bytes_per_message(redis: Redis, total: int) -> dict[str, float]:
    """The history's memory per message: sampled records (and an SMS's intent set), plus
    every index key, all by MEMORY USAGE."""
    sample = list(range(0, total, max(1, total // 400)))
    pipe = redis.pipeline(transaction=False)
    for i in sample:
        if i % 2 == 0:
            pipe.memory_usage(keys.history_inbound(f"SM{i:032x}"))
        else:
            pipe.memory_usage(keys.outbound_message(hashlib.md5(str(i).encode()).hexdigest()))
            pipe.memory_usage(keys.history_sms_of(f"post:{i - 1}"))
    records = sum(int(x or 0) for x in pipe.execute()) / len(sample)
    index_keys = list(redis.scan_iter(keys.history_index(0, "*").replace(":0:", ":*:"), count=10_000))
    for key in index_keys:
        pipe.memory_usage(key, samples=0)
    indexes = sum(int(x or 0) for x in pipe.execute()) / total
    return {"total": round(records + indexes, 1), "records": round(records, 1), "indexes": round(indexes, 1)}
