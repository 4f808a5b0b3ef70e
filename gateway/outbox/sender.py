"""The workers' side of outbound SMS: claim a batch, pace it, call the provider once per message.

A batch costs two round trips to Redis whatever its size (read the messages, settle them
all, each a pipeline of per-message scripts), plus three per message around its API call
(the rate guard, begin, the guard again); the calls run SEND_CONCURRENCY at a time in a
thread pool, one recipient's in the order queued. When paced, the batch reserves its
slots of the shared rate at once (`pacing.reserve`), each call waits for its own slot and
passes the send-rate guard (`pacing.admit`), which keeps the rate where the provider
counts it however late a call is.

Each lane is a worklist (`gateway.store.worklist`): a send job claims a batch of ids, so
a killed worker's batch goes back to its lane (`reclaim_stale`). Each message then moves
queued → sending atomically right before its API call; only the job that made that move
may call the provider for it, so a message is never sent twice, however often its id
reappears. A message left "sending" (the worker died mid-call, or the provider never
answered) waits for a delivery report to settle it; after `UNCONFIRMED_GRACE_SECONDS` of silence it
is taken as never accepted and queued again (`reap_unconfirmed`). Marking each message
just before its call keeps that slow path to the calls in flight when a worker dies.

Retryable errors (429, 5xx, no connection) go to a per-lane delay zset with exponential
backoff and jitter, and take their slot of the send rate again like a first try; they are
retried for RETRY_WINDOW_SECONDS however many attempts that takes, so an outage at the provider
delays SMS but loses none. A job sleeps through short waits and otherwise schedules its
successor for when the next retry is due. A job gives its worker back after
`JOB_BUDGET_SECONDS`, so texts coming in are never stuck behind a long fan-out.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError

from gateway import segments
from gateway.outbox import outbound, pacing, routes
from gateway.outbox.outbound import DRAIN_FLAG_TTL_MS, enqueue_send_job
from gateway.outbox.sender_scripts import LUA
from gateway.providers.records import NO_ANSWER, OPTED_OUT, Sender, SendError
from gateway.runtime import Runtime
from gateway.store import heartbeats, history, keys, scripts, stats
from gateway.store.queues import LANES
from gateway.store.replicated import NotReplicated
from gateway.store.worklist import Worklist
from gateway.store.worklist import promote_due as _promote

log = logging.getLogger(__name__)

JOB_BUDGET_SECONDS = 10.0
# A paced batch reserves this long of the shared send rate at once: an answer queued
# meanwhile waits at most this long behind bulk SMS for its slot.
BATCH_SECONDS = 1.0
MAX_BATCH = 100
SEND_CONCURRENCY = 16  # API calls in flight per send job
# One send job makes SEND_CONCURRENCY calls at a time in one process: about this many SMS
# a second against a provider answering in ~0.2 s. Unpaced, or allowed more than this, a
# backlog of at least HELP_BACKLOG SMS in the fan-out lane gets helper jobs beside the
# lane's own, up to MAX_SEND_JOBS in all (one per live worker): a 10,000-follower post is
# then sent by every worker process at once, not by one.
ONE_JOB_MPS = 80.0
HELP_BACKLOG = 2 * MAX_BATCH
MAX_SEND_JOBS = 4
HELP_EVERY_SECONDS = 1.0  # how often the lane's own job looks whether its backlog needs help
# Texts waiting to become posts come first: while more than INBOX_BACKLOG wait, a send job
# gives way to them for up to GIVE_WAY_SECONDS before each batch, so the SMS (welcomes to a
# flood of first-time texters, a large fan-out) do not take the cores the posts need. Then
# a batch goes anyway: however long a flood lasts, SMS still leave, at least a batch per
# GIVE_WAY_SECONDS per job. (The drain takes up to 200 texts at a time, so what waits is
# what came during one batch: a few at 100 texts a second, over 50 from about 400 a second,
# or when the web processes, not the workers, are what is short of CPU. At 200, welcomes
# still went out during a burst whenever the web was the bottleneck: first-time texters
# 0.61 × the returning rate in a full bench run, 0.96 × at 50 in a run of that scenario after.)
INBOX_BACKLOG = 50
GIVE_WAY_SECONDS = 5.0
GIVE_WAY_STEP_SECONDS = 0.1
# A live job touches its claim before each call, which comes within a slot wait (at most
# the job budget) and an API call: an older claim is a dead job's. (Returning a live job's
# ids early would cost nothing but time: "begin" lets only one job send each.)
CLAIM_STALE_SECONDS = 30.0
# A provider reports within seconds: this long a silence means it never took the SMS.
UNCONFIRMED_GRACE_SECONDS = 600.0
# A Sentinel failover takes seconds: outcomes a provider gave wait this long for a primary.
SETTLE_PATIENCE_SECONDS = 30.0
SETTLE_RETRY_SECONDS = 0.5
# Calls whose outcome stayed unknown before an SMS is failed as "unconfirmed" (refusals,
# which certainly sent nothing, do not count).
MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 1.0
# The longest wait between two tries, which is also how late SMS resume once a provider is
# back after an outage: retries take slots of the send rate like first tries, so trying
# often costs the provider no more than SMS_MPS.
RETRY_CAP_SECONDS = 30.0
# Throttled or refused by a provider in trouble, an SMS is retried this long after it was
# queued ("retried until a permanent outcome"); then it fails with the last code.
RETRY_WINDOW_SECONDS = outbound.RETRY_WINDOW_SECONDS


@dataclass(frozen=True)
class DrainOutcome:
    more: bool = False  # stopped for the budget with SMS still waiting in the lanes
    next_due: float | None = None  # unix time to carry on (a retry or the send rate), if not now


def _script(redis: Redis, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
    return scripts.load(redis, LUA[name])(keys=list(keys_), args=list(args))


def backoff(attempts: int) -> float:
    """Seconds before retry number `attempts`: exponential, capped, with "equal jitter"."""
    delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def lane_of(name: str) -> Worklist:
    """The worklist of an outbound lane ("replies" or "fanout")."""
    return Worklist(keys.outbound_lane(name), keys.outbound_claims(name), keys.outbound_claim)


def reclaim_stale(redis: Redis, older_than: float | None = None) -> int:
    """Return the batches of dead send jobs to the head of their lanes; returns how many ids."""
    older_than = CLAIM_STALE_SECONDS if older_than is None else older_than
    returned = sum(lane_of(name).reclaim_stale(redis, older_than)[0] for name in LANES)
    if returned:
        log.warning("returned %d SMS from abandoned send batches to their lanes", returned)
    return returned


def reap_unconfirmed(
    redis: Redis, grace: float | None = None, history_days: int = history.DEFAULT_DAYS
) -> int:
    """Queue again the SMS left "sending" with no word from the provider for `grace` seconds
    (fail those whose calls had no known outcome MAX_ATTEMPTS times)."""
    grace = UNCONFIRMED_GRACE_SECONDS if grace is None else grace
    now = time.time()
    requeued = 0
    for mid in cast(list[str], redis.zrangebyscore(keys.OUTBOUND_SENDING, "-inf", now - grace)):
        ks = [keys.outbound_message(mid), keys.OUTBOUND_SENDING, keys.OUTBOUND_STATS]
        ks += [keys.outbound_lane("replies"), keys.outbound_lane("fanout")]
        ks += [history.index(now, history.by_outcome("failed"))]
        args = [mid, f"{now:.3f}", MAX_ATTEMPTS, history.score(now), history.expire_at(now, history_days)]
        result = _script(redis, "reap", ks, args)
        requeued += result == 1
    if requeued:
        log.warning("%d SMS never confirmed by their provider were queued again", requeued)
    return requeued


def promote_due(redis: Redis, lanes: Sequence[str] = LANES) -> int:
    """Move retries whose time has come back into their lanes."""
    now = time.time()
    return sum(_promote(redis, keys.outbound_delayed(name), keys.outbound_lane(name), now) for name in lanes)


def _next_due(redis: Redis, lanes: Sequence[str]) -> float | None:
    pipe = redis.pipeline(transaction=False)
    for lane in lanes:
        pipe.zrange(keys.outbound_delayed(lane), 0, 0, withscores=True)
    dues = [rows[0][1] for rows in pipe.execute() if rows]
    return min(dues) if dues else None


@dataclass(frozen=True)
class _Attempt:
    """One message's API call, as the settle script and the console's figures need it."""

    mid: str
    recipient: str  # their subscriber id
    created: float | None
    provider: str
    outcome: str = "sent"  # sent / retry / failed / unknown
    provider_id: str = ""
    segments: int = 0
    code: str = ""
    due: float = 0.0
    opted_out: bool = False
    neutral: str = ""  # a refusal's neutral outcome (records.OUTCOMES), for the history
    generation: int = 0  # of the SMS when called (see the settle script)
    called: bool = True  # False: held back before the call, which says nothing of the provider


@dataclass(frozen=True)
class _Call:
    """One message a batch will send: its id, the provider taking it, its slot of that
    provider's send rate, when it was queued."""

    mid: str
    recipient: str  # their subscriber id
    provider: str
    slot: float  # time.monotonic()
    created: float | None
    segments: int
    prefix: str = ""  # the provider's channel prefix for the recipient ("whatsapp"), if any


@dataclass(frozen=True)
class _Batch:
    """What every call of one claimed batch shares."""

    runtime: Runtime
    senders: Mapping[str, Sender]  # by provider
    lane: str
    token: str


def _begin(batch: _Batch, call: _Call) -> list[str]:
    """Move one message queued → sending, taking it out of the batch's claim."""
    ks = [
        keys.outbound_message(call.mid),
        keys.OUTBOUND_SENDING,
        keys.outbound_claim(batch.token),
        keys.outbound_claims(batch.lane),
        keys.OUTBOUND_STATS,
        keys.subscriber(call.recipient),
    ]
    now = time.time()
    ks += [history.index(now, history.by_outcome("cancelled"))]
    days = batch.runtime.config.history_days
    args = [f"{now:.3f}", call.mid, batch.token, history.score(now), history.expire_at(now, days)]
    redis = batch.runtime.redis
    return cast(list[str], batch.runtime.replication.run(redis, scripts.load(redis, LUA["begin"]), ks, args))


def may_retry(created: float | None, attempts: int) -> bool:
    """Whether a refused SMS (throttled, the provider's trouble) is tried again: for as long as
    RETRY_WINDOW_SECONDS since it was queued, however many attempts that takes."""
    if created is None:
        return attempts < MAX_ATTEMPTS
    return time.time() - created < RETRY_WINDOW_SECONDS


def _call(batch: _Batch, call: _Call) -> _Attempt | None:
    """Wait for the message's slot of the send rate, mark it sending, then call the provider.
    None when the message is no longer to be sent (cancelled, gone, taken by another job)."""
    delay = call.slot - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    redis, provider = batch.runtime.redis, call.provider
    rate = batch.runtime.config.mps(provider)
    # Through the send-rate guard (late calls must not bunch where the provider counts), then
    # marked "sending" just before the request: a worker killed before that leaves the
    # message claimed (certainly unsent: it goes back to its lane), not "sending".
    call_id = f"{call.mid}:{uuid.uuid4().hex[:8]}" if rate > 0 else call.mid
    while (wait := pacing.admit(redis, call_id, call.segments, rate, provider=provider)) > 0:
        time.sleep(wait)
    try:
        got = _begin(batch, call)
    except NotReplicated as e:
        got = e.results[0]
        if got[0] == "go":
            # The "sending" mark may not survive a failover: were the SMS sent now, a promoted
            # replica would see it still queued and send it again. So it is not sent yet.
            pacing.release(redis, call_id, call.segments, rate, made=False, provider=provider)
            return _not_replicated(call, got)
    if got[0] != "go":
        pacing.release(redis, call_id, call.segments, rate, made=False, provider=provider)
        if got[1:] == ["off"]:  # a DM whose recipient went OFF or stopped since: its sender is told
            outbound.tell_undelivered(redis, batch.runtime.queues, call.mid)
        return None
    attempt = _request(batch, call, got)
    # The provider's answer must reach the settle step even if Redis is failing over now:
    # lost, the SMS would stay "sending" and the reaper would send it again. The guard's
    # entry, left unreleased, ends with its lease.
    with contextlib.suppress(RedisError):
        pacing.release(redis, call_id, call.segments, rate, provider=provider)
    return attempt


def _not_replicated(call: _Call, got: list[str]) -> _Attempt:
    """An SMS marked sending whose mark no replica confirmed: certainly unsent, tried again
    after a backoff, as a refusal would be."""
    attempts, generation = int(got[3]), int(got[4])
    log.warning("SMS %s: its sending mark was not replicated; it waits for a retry", call.mid)
    due = time.time() + backoff(attempts)
    return _Attempt(
        call.mid,
        call.recipient,
        call.created,
        call.provider,
        outcome="retry",
        due=due,
        generation=generation,
        called=False,
    )


def _request(batch: _Batch, call: _Call, got: list[str]) -> _Attempt:
    """The API call for a message just marked sending, and what came of it."""
    mid, recipient, created, provider = call.mid, call.recipient, call.created, call.provider
    body, attempts, generation = got[1], int(got[3]), int(got[4])
    try:
        their_id = outbound.provider_message_id(mid, generation)  # a new one after a reported failure
        number = batch.runtime.vault.decrypt(got[2])
        to = f"{call.prefix}:{number}" if call.prefix else number
        result = batch.senders[provider].send(to, body, their_id)
        cost = result.segments or segments.segments(body)
        return _Attempt(
            mid,
            recipient,
            created,
            provider,
            provider_id=result.provider_id,
            segments=cost,
            generation=generation,
        )
    except SendError as e:
        if e.outcome_unknown:
            outcome, due = "unknown", 0.0
        elif e.retryable and may_retry(created, attempts):
            outcome, due = "retry", time.time() + backoff(attempts)
        else:
            outcome, due = "failed", 0.0
        log.info("SMS %s attempt %d via %s: %s (%s)", mid, attempts, provider, outcome, e.message)
        opted_out = e.outcome == OPTED_OUT
        return _Attempt(
            mid,
            recipient,
            created,
            provider,
            outcome=outcome,
            code=e.code,
            due=due,
            opted_out=opted_out,
            neutral=e.outcome,
            generation=generation,
        )
    except Exception as e:  # never a crash: the outcome is simply unknown
        log.error("SMS %s attempt %d via %s: unexpected %s", mid, attempts, provider, type(e).__name__)
        return _Attempt(
            mid, recipient, created, provider, outcome="unknown", code=NO_ANSWER, generation=generation
        )


def _call_in_order(batch: _Batch, calls: Sequence[_Call]) -> list[_Attempt]:
    """One recipient's calls, one after the other, so their SMS leave in the order queued
    (in a pool thread)."""
    return [a for call in calls if (a := _call(batch, call)) is not None]


def _settle_all(
    redis: Redis, lane: str, done: Sequence[_Attempt], history_days: int = history.DEFAULT_DAYS
) -> None:
    """Record every outcome, and count them for the console, in one round trip: a script
    call per message, then the batch's counters summed (a few commands, not ~20 per SMS)."""
    if not done:
        return
    script, now = scripts.load(redis, LUA["settle"]), time.time()
    delayed = keys.outbound_delayed(lane)
    pipe = redis.pipeline(transaction=False)
    counts: Counter[str] = Counter()
    outcomes: dict[str, list[str]] = {}
    latencies = []
    for a in done:
        ks = [keys.outbound_message(a.mid), keys.OUTBOUND_SENDING, keys.OUTBOUND_STATS, delayed]
        ks += [keys.subscriber(a.recipient)]
        created = a.created or now
        ks += [history.index(created, history.by_provider(a.provider))]
        ks += [history.index(now, history.by_outcome(o)) for o in (a.outcome, "opted_out")]
        args: list[str | int] = [a.outcome, a.mid, f"{now:.3f}", a.provider_id, a.segments, a.code]
        args += [f"{a.due:.3f}", "1" if a.opted_out else "0", a.provider, a.generation, a.neutral]
        args += [history.score(created), history.expire_at(created, history_days)]
        args += [history.score(now), history.expire_at(now, history_days)]
        script(keys=ks, args=args, client=pipe)
        if a.called:  # held back before its call, it says nothing of the provider's health
            outcomes.setdefault(a.provider, []).append(a.outcome)
        if a.outcome in ("sent", "failed"):
            counts[f"out:sms-{lane}"] += 1
            counts.update(stats.sms_counts(a.outcome, a.code or None, a.segments, a.provider))
        if a.outcome == "sent" and a.created:
            latencies.append(now - a.created)
    for provider, seen in outcomes.items():
        routes.note_many(pipe, provider, seen, now)
    if counts:
        stats.record_many(pipe, counts, now)
    stats.observe_latencies(pipe, "post_to_sms", latencies, now)
    pipe.execute()


def _settle_through_failover(
    redis: Redis, lane: str, done: Sequence[_Attempt], history_days: int = history.DEFAULT_DAYS
) -> None:
    """`_settle_all`, tried again while Redis fails (a primary dying, a replica being promoted)
    for up to SETTLE_PATIENCE_SECONDS: these SMS were already handed to the provider, and an
    outcome forgotten leaves its SMS "sending", which the reaper later sends a second time."""
    deadline = time.monotonic() + SETTLE_PATIENCE_SECONDS
    while True:
        try:
            return _settle_all(redis, lane, done, history_days)
        except RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(SETTLE_RETRY_SECONDS)


def _send_batch(
    runtime: Runtime,
    senders: Mapping[str, Sender],
    pool: ThreadPoolExecutor,
    lane: str,
    token: str,
    ids: list[str],
    deadline: float,
) -> float | None:
    """Send a claimed batch. Returns None when done, else (a provider's send rate being
    spent until after `deadline`) the unix time to resume at; the unsent ids go back to
    the lane.

    Two round trips to Redis for the whole batch (read, settle) plus one per provider
    (its slots of the send rate), and three per message around its call (guard, begin,
    guard); the API calls run SEND_CONCURRENCY at a time.
    """
    redis, config = runtime.redis, runtime.config
    pipe = redis.pipeline(transaction=False)
    for mid in ids:
        pipe.hmget(keys.outbound_message(mid), "status", "body", "created", "r", "ch", "pre", "attempts")
    rows = pipe.execute()
    health = routes.read_health(redis, config.sms_providers)
    now, horizon = time.time(), max(0.0, deadline - time.monotonic())
    # A failed-over provider's trial is an SMS never tried before: one it failed already
    # would be its trial at each retry (spaced further apart than trials), and never fail over.
    fresh = [row[0] == "queued" and (row[6] or "0") == "0" for row in rows]
    trying = routes.trials(
        redis, config, health, {row[4] or "" for row, f in zip(rows, fresh, strict=True) if f}, now
    )
    # Only a queued message costs a slot of its provider's send rate; the rest leave the claim.
    queued: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row[0] == "queued":
            chosen = routes.choose(config, health, row[4] or "", now, trying if fresh[i] else None)
            queued.setdefault(chosen, []).append(i)
    costs = {i: segments.segments(rows[i][1] or "") for found in queued.values() for i in found}
    slot_of: dict[int, tuple[str, float]] = {}
    resume_at, cut = None, len(ids)
    for provider, found in queued.items():
        rate, wanted = config.mps(provider), [costs[i] for i in found]
        slots = pacing.reserve(redis, wanted, rate, horizon=horizon, provider=provider)
        slot_of.update((i, (provider, at)) for i, at in zip(found, slots.at, strict=False))
        if slots.granted < len(found):
            cut = min(cut, found[slots.granted])
            later = time.time() + slots.wait + seconds_for(rate, wanted, slots.granted)
            resume_at = later if resume_at is None else min(resume_at, later)
    # A message no longer queued was sent, cancelled or is another job's: it only leaves the
    # claim. (Should it be queued again meanwhile, that put it back in a lane as well.)
    pipe = redis.pipeline(transaction=False)
    for i in range(cut):
        if i not in costs:
            pipe.lrem(keys.outbound_claim(token), 1, ids[i])
    pipe.execute()
    # Calls run SEND_CONCURRENCY at a time, but one recipient's in the order queued.
    by_recipient: dict[str, list[_Call]] = {}
    for i in sorted(slot_of):
        provider, slot = slot_of[i]
        created = float(rows[i][2]) if rows[i][2] else None
        # The prefix is the texter's channel at the provider they texted: not another's.
        prefix = (rows[i][5] or "") if provider == rows[i][4] else ""
        call = _Call(ids[i], rows[i][3] or "", provider, slot, created, costs[i], prefix)
        by_recipient.setdefault(rows[i][3] or ids[i], []).append(call)
    batch = _Batch(runtime, senders, lane, token)
    futures = [pool.submit(_call_in_order, batch, calls) for calls in by_recipient.values()]
    done: list[_Attempt] = []
    killed: BaseException | None = None
    for future in futures:
        try:
            done += future.result()
        except BaseException as e:  # the worker is going down: settle what finished, then go
            killed = killed or e
    _settle_through_failover(redis, lane, done, config.history_days)
    for a in done:  # a DM whose recipient opted out with their carrier: its sender is told
        if a.opted_out and a.outcome == "failed":
            outbound.tell_undelivered(redis, runtime.queues, a.mid)
    if killed is not None:
        raise killed
    lane_of(lane).give_back(redis, token)
    return resume_at


def seconds_for(rate: float, costs: Sequence[int], granted: int) -> float:
    """How long the granted part of a batch holds the send rate (0 when unpaced)."""
    return 0.0 if rate <= 0 else sum(costs[:granted]) * pacing.seconds_per_segment(rate)


def has_work(redis: Redis, lane: str) -> bool:
    return bool(redis.llen(keys.outbound_lane(lane)))


def _leftover(redis: Redis, lanes: Sequence[str], resume_at: float | None = None) -> DrainOutcome:
    if any(has_work(redis, lane) for lane in lanes):
        return DrainOutcome(more=True, next_due=resume_at)
    return DrainOutcome(next_due=_next_due(redis, lanes))


def drain(
    runtime: Runtime,
    senders: Mapping[str, Sender],
    lanes: Sequence[str],
    budget: float | None = None,
    helped: str | None = None,
) -> DrainOutcome:
    """Send what waits in `lanes` (earlier lanes first) for up to `budget` seconds, through
    `senders` (by provider); `helped`: the lane whose own job this is, which asks for helpers
    (`call_helpers`) whenever its backlog grows."""
    pool = ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="sms-send")
    try:
        return _drain(runtime, senders, pool, lanes, budget, helped)
    finally:
        # A call not yet started was never made: its SMS stays "sending" until reaped.
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(
    runtime: Runtime,
    senders: Mapping[str, Sender],
    pool: ThreadPoolExecutor,
    lanes: Sequence[str],
    budget: float | None,
    helped: str | None = None,
) -> DrainOutcome:
    redis, rate = runtime.redis, runtime.config.total_mps  # every provider's share, together
    batch = MAX_BATCH if rate <= 0 else max(1, min(MAX_BATCH, int(rate * BATCH_SECONDS)))
    deadline = time.monotonic() + (JOB_BUDGET_SECONDS if budget is None else budget)
    asked_at = -HELP_EVERY_SECONDS
    while True:
        if helped and time.monotonic() - asked_at >= HELP_EVERY_SECONDS:
            call_helpers(runtime, helped)  # a fan-out's batch jobs fill its lane as it goes
            asked_at = time.monotonic()
        promote_due(redis, lanes)
        give_way(redis, deadline)
        if time.monotonic() >= deadline:
            return _leftover(redis, lanes)
        for lane in lanes:  # the replies lane first, at every batch
            claim = lane_of(lane).claim(redis, batch)
            if claim.ids:
                resume_at = _send_batch(runtime, senders, pool, lane, claim.token, claim.ids, deadline)
                if resume_at is not None:
                    return _leftover(redis, lanes, resume_at)
                break
        else:
            due = _next_due(redis, lanes)
            if due is None:
                return DrainOutcome()
            wait = due - time.time()
            if time.monotonic() + wait >= deadline:
                return DrainOutcome(next_due=due)
            time.sleep(max(0.0, min(wait, 1.0)))


def give_way(redis: Redis, deadline: float) -> float:
    """Wait while more than INBOX_BACKLOG texts wait to become posts, for at most
    GIVE_WAY_SECONDS (and not past `deadline`); returns how long it waited."""
    start = time.monotonic()
    until = min(deadline, start + GIVE_WAY_SECONDS)
    while time.monotonic() < until and redis.llen(keys.INBOX) > INBOX_BACKLOG:
        time.sleep(GIVE_WAY_STEP_SECONDS)
    return time.monotonic() - start


def call_helpers(runtime: Runtime, lane: str) -> int:
    """Ask idle workers to help send a large fan-out backlog: one extra send job per other
    live worker (at most MAX_SEND_JOBS in all), each in its own slot. Returns how many were
    asked. Only when unpaced or when the send rate is more than one job keeps up with:
    otherwise the rate, not the job, is what holds SMS back."""
    redis, rate = runtime.redis, runtime.config.total_mps
    if lane != "fanout" or 0 < rate <= ONE_JOB_MPS:
        return 0
    if redis.llen(keys.outbound_lane(lane)) < HELP_BACKLOG:
        return 0
    wanted = min(MAX_SEND_JOBS, heartbeats.alive(redis)) - 1
    asked = 0
    for helper in range(1, wanted + 1):
        if redis.set(keys.outbound_drain_scheduled(lane, helper), "1", nx=True, px=DRAIN_FLAG_TTL_MS):
            enqueue_send_job(runtime.queues, lane, helper=helper)
            asked += 1
    return asked


def run_job(runtime: Runtime, senders: Mapping[str, Sender], lane: str, helper: int = 0) -> None:
    """One send job: recover, drain, then hand over to a successor or free the lane's slot.
    A helper (n > 0) drains beside the lane's own job until the lane is empty or its budget
    is spent, then frees its slot: the lane's own job carries on and asks again if need be."""
    redis = runtime.redis
    reclaim_stale(redis)
    reap_unconfirmed(redis, history_days=runtime.config.history_days)
    lanes = ("replies",) if lane == "replies" else ("replies", "fanout")
    if helper:
        try:
            drain(runtime, senders, lanes)
        finally:
            redis.delete(keys.outbound_drain_scheduled(lane, helper))
        return
    out = drain(runtime, senders, lanes, helped=lane)
    flag = keys.outbound_drain_scheduled(lane)
    if out.more or out.next_due is not None:
        later = max(0.0, (out.next_due or 0) - time.time())
        redis.set(flag, "1", px=int(later * 1000) + DRAIN_FLAG_TTL_MS)
        enqueue_send_job(runtime.queues, lane, at=out.next_due)
    else:
        # Free the slot, then look once more: an SMS queued meanwhile saw the slot taken.
        redis.delete(flag)
        if has_work(redis, lane) and redis.set(flag, "1", nx=True, px=DRAIN_FLAG_TTL_MS):
            enqueue_send_job(runtime.queues, lane)


def needs_drain(redis: Redis) -> list[str]:
    """For the watchdog: recover stranded SMS and claim the slot of each lane that needs a job."""
    reclaim_stale(redis)
    reap_unconfirmed(redis)
    promote_due(redis)
    return [
        lane
        for lane in LANES
        if has_work(redis, lane)
        and redis.set(keys.outbound_drain_scheduled(lane), "1", nx=True, px=DRAIN_FLAG_TTL_MS)
    ]
