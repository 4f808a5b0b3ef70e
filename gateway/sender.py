"""The workers' side of outbound SMS: claim a batch, pace it, call Twilio once per message.

Like the inbox, a send job claims a batch of ids by moving them into a claim list of its
own, so a killed worker's batch goes back to its lane (`reclaim_stale`). Each message
then moves queued → sending atomically before the API call; only the job that made that
move may call Twilio for it, so a message is never sent twice, however often its id
reappears. A message left "sending" (the worker died, or Twilio never answered) waits
for a status callback to settle it; after `UNCONFIRMED_GRACE_SECONDS` of silence it is
taken as never accepted and queued again (`reap_unconfirmed`).

Retryable errors go to a per-lane delay zset with exponential backoff and jitter; a job
sleeps through short waits and otherwise schedules its successor for when the next retry
is due. A job gives its worker back after `JOB_BUDGET_SECONDS`, so texts coming in are
never stuck behind a long fan-out.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from redis import Redis
from rq import Queue

from gateway import keys, pacing, segments, stats
from gateway.outbound import DRAIN_FLAG_TTL_MS, LANES, RQ_QUEUE_OF_LANE, enqueue_send_job
from gateway.runtime import Runtime
from gateway.sender_scripts import LUA
from gateway.twilio import SendError, SendResult

log = logging.getLogger(__name__)

JOB_BUDGET_SECONDS = 10.0
BATCH_SECONDS = 5.0  # a claimed batch takes about this long at the paced rate
MAX_BATCH = 50
CLAIM_STALE_SECONDS = 120.0  # a live job touches its claim at every message
# Twilio's callbacks come within seconds: this long a silence means it never took the SMS.
UNCONFIRMED_GRACE_SECONDS = 600.0
MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 300.0


class Sender(Protocol):
    def send(self, to: str, body: str, status_callback: str) -> SendResult: ...


@dataclass(frozen=True)
class DrainOutcome:
    more: bool = False  # stopped for the budget with SMS still waiting in the lanes
    next_due: float | None = None  # unix time to carry on (a retry or the send rate), if not now


def _script(redis: Redis, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
    return redis.register_script(LUA[name])(keys=list(keys_), args=list(args))


def backoff(attempts: int) -> float:
    """Seconds before retry number `attempts`: exponential, capped, with "equal jitter"."""
    delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def reclaim_stale(redis: Redis, older_than: float | None = None) -> int:
    """Return the batches of dead send jobs to the head of their lanes; returns how many ids."""
    older_than = CLAIM_STALE_SECONDS if older_than is None else older_than
    returned = 0
    for lane in LANES:
        stale = redis.zrangebyscore(keys.outbound_claims(lane), "-inf", time.time() - older_than)
        for token in cast(list[str], stale):
            claim = [keys.outbound_lane(lane), keys.outbound_claim(token), keys.outbound_claims(lane)]
            returned += int(_script(redis, "return", claim, [token]))
    if returned:
        log.warning("returned %d SMS from abandoned send batches to their lanes", returned)
    return returned


def reap_unconfirmed(redis: Redis, grace: float | None = None) -> int:
    """Queue again the SMS left "sending" with no word from Twilio for `grace` seconds."""
    grace = UNCONFIRMED_GRACE_SECONDS if grace is None else grace
    now = time.time()
    requeued = 0
    for mid in cast(list[str], redis.zrangebyscore(keys.OUTBOUND_SENDING, "-inf", now - grace)):
        ks = [keys.outbound_message(mid), keys.OUTBOUND_SENDING, keys.OUTBOUND_STATS]
        result = _script(redis, "reap", ks, [mid, f"{now:.3f}", MAX_ATTEMPTS, keys.outbound_lane("")])
        requeued += result == 1
    if requeued:
        log.warning("%d SMS never confirmed by Twilio were queued again", requeued)
    return requeued


def promote_due(redis: Redis, lanes: Sequence[str] = LANES) -> int:
    """Move retries whose time has come back into their lanes."""
    now = f"{time.time():.3f}"
    moved = 0
    for lane in lanes:
        ks = [keys.outbound_delayed(lane), keys.outbound_lane(lane)]
        moved += int(_script(redis, "promote", ks, [now, 1000]))
    return moved


def _next_due(redis: Redis, lanes: Sequence[str]) -> float | None:
    pipe = redis.pipeline(transaction=False)
    for lane in lanes:
        pipe.zrange(keys.outbound_delayed(lane), 0, 0, withscores=True)
    dues = [rows[0][1] for rows in pipe.execute() if rows]
    return min(dues) if dues else None


def _send_one(
    runtime: Runtime, sender: Sender, lane: str, token: str, mid: str, created: float | None = None
) -> None:
    """Begin (queued → sending), call Twilio, settle the outcome, count it for the console."""
    redis, now = runtime.redis, time.time()
    begin_keys = [
        keys.outbound_message(mid),
        keys.OUTBOUND_SENDING,
        keys.outbound_claim(token),
        keys.outbound_claims(lane),
        keys.OUTBOUND_STATS,
    ]
    began: list[str] = _script(redis, "begin", begin_keys, [f"{now:.3f}", mid, keys.subscriber(""), token])
    if began[0] != "go":
        return
    body, phone_encrypted, attempts = began[1], began[2], int(began[3])
    callback = f"{runtime.config.public_url}/twilio/status?m={mid}"
    outcome, sid, segs, code, due = "sent", "", 0, "", 0.0
    try:
        result = sender.send(runtime.vault.decrypt(phone_encrypted), body, callback)
        sid, segs = result.sid, result.num_segments or segments.segments(body)
    except SendError as e:
        code = str(e.code)
        if e.outcome_unknown:
            outcome = "unknown"
        elif e.retryable and attempts < MAX_ATTEMPTS:
            outcome, due = "retry", time.time() + backoff(attempts)
        else:
            outcome = "failed"
        log.info("SMS %s attempt %d: %s (%s)", mid, attempts, outcome, e.message)
    except Exception as e:  # never a crash: the outcome is simply unknown
        outcome, code = "unknown", "0"
        log.error("SMS %s attempt %d: unexpected %s", mid, attempts, type(e).__name__)
    settle_keys = [
        keys.outbound_message(mid),
        keys.OUTBOUND_SENDING,
        keys.OUTBOUND_STATS,
        keys.outbound_delayed(lane),
    ]
    args = [outcome, mid, f"{time.time():.3f}", sid, segs, code, f"{due:.3f}", keys.subscriber("")]
    _script(redis, "settle", settle_keys, args)
    _count(redis, lane, outcome, code, segs, created)


def _count(redis: Redis, lane: str, outcome: str, code: str, segs: int, created: float | None) -> None:
    """The console's figures for one attempt, in one pipeline."""
    pipe = redis.pipeline(transaction=False)
    if outcome in ("sent", "failed"):
        stats.record(pipe, f"out:sms-{lane}")
        stats.record_sms(pipe, outcome, code or None, segments=segs)
    if outcome == "sent" and created:
        stats.observe_latency(pipe, "post_to_sms", time.time() - created)
    pipe.execute()


def _send_batch(
    runtime: Runtime, sender: Sender, lane: str, token: str, ids: list[str], deadline: float
) -> float | None:
    """Send a claimed batch. Returns None when done, else (the send rate being spent until
    after `deadline`) the unix time to resume at; the unsent ids go back to the lane."""
    redis, rate = runtime.redis, runtime.config.sms_mps
    pipe = redis.pipeline(transaction=False)
    for mid in ids:
        pipe.hmget(keys.outbound_message(mid), "status", "body", "created")
    resume_at = None
    for mid, (status, body, created) in zip(ids, pipe.execute(), strict=True):
        # Only a queued message costs a slot of the send rate; the rest just leave the claim.
        if status == "queued":
            wait = pacing.wait_for(redis, segments.segments(body or ""), rate, deadline)
            if wait:
                resume_at = time.time() + wait
                break
        _send_one(runtime, sender, lane, token, mid, float(created) if created else None)
    claim = [keys.outbound_lane(lane), keys.outbound_claim(token), keys.outbound_claims(lane)]
    _script(redis, "return", claim, [token])
    return resume_at


def has_work(redis: Redis, lane: str) -> bool:
    return bool(redis.llen(keys.outbound_lane(lane)))


def _leftover(redis: Redis, lanes: Sequence[str], resume_at: float | None = None) -> DrainOutcome:
    if any(has_work(redis, lane) for lane in lanes):
        return DrainOutcome(more=True, next_due=resume_at)
    return DrainOutcome(next_due=_next_due(redis, lanes))


def drain(
    runtime: Runtime, sender: Sender, lanes: Sequence[str], budget: float | None = None
) -> DrainOutcome:
    """Send what waits in `lanes` (earlier lanes first) for up to `budget` seconds."""
    redis, rate = runtime.redis, runtime.config.sms_mps
    batch = MAX_BATCH if rate <= 0 else max(1, min(MAX_BATCH, int(rate * BATCH_SECONDS)))
    deadline = time.monotonic() + (JOB_BUDGET_SECONDS if budget is None else budget)
    while True:
        promote_due(redis, lanes)
        if time.monotonic() >= deadline:
            return _leftover(redis, lanes)
        for lane in lanes:  # the replies lane first, at every batch
            token = uuid.uuid4().hex
            claim = [keys.outbound_lane(lane), keys.outbound_claim(token), keys.outbound_claims(lane)]
            ids: list[str] = _script(redis, "claim", claim, [batch, token, f"{time.time():.3f}"])
            if ids:
                resume_at = _send_batch(runtime, sender, lane, token, ids, deadline)
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


def run_job(runtime: Runtime, sender: Sender, rq_queues: dict[str, Queue], lane: str) -> None:
    """One send job: recover, drain, then hand over to a successor or free the lane's slot."""
    redis = runtime.redis
    reclaim_stale(redis)
    reap_unconfirmed(redis)
    out = drain(runtime, sender, ("replies",) if lane == "replies" else ("replies", "fanout"))
    flag, queue = keys.outbound_drain_scheduled(lane), rq_queues[RQ_QUEUE_OF_LANE[lane]]
    if out.more or out.next_due is not None:
        later = max(0.0, (out.next_due or 0) - time.time())
        redis.set(flag, "1", px=int(later * 1000) + DRAIN_FLAG_TTL_MS)
        enqueue_send_job(queue, lane, at=out.next_due)
    else:
        # Free the slot, then look once more: an SMS queued meanwhile saw the slot taken.
        redis.delete(flag)
        if has_work(redis, lane) and redis.set(flag, "1", nx=True, px=DRAIN_FLAG_TTL_MS):
            enqueue_send_job(queue, lane)


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
