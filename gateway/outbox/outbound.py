"""Outbound SMS: queued at most once per (intent, recipient), sent in batches by workers.

Each SMS is a small hash (recipient id, body, kind, status, attempts, error code; never
the number) whose id is derived from its intent and recipient, so queuing the same
intent twice is a no-op. Ids wait in one of two lanes, "replies" (answers, direct
messages) and "fanout" (bulk), which send jobs drain (see `sender.py`).

A message's status only moves forward, by rank: queued < sending < sent < delivered /
undelivered / failed / cancelled. "sending" means our API call began and we do not know
yet whether the provider took it; only its report or a long silence resolves it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from rq import Queue

from gateway.config import Limits
from gateway.providers.records import FAILED, OPTED_OUT, RETRY, UNDELIVERED, DeliveryReport
from gateway.runtime import Runtime
from gateway.store import history, keys, queues, scripts, stats

KINDS = ("answer", "direct", "fanout")
LANE_OF_KIND = {"answer": "replies", "direct": "replies", "fanout": "fanout"}
RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "cancelled": 3}

MESSAGE_TTL_SECONDS = 14 * 24 * 3600  # the window in which an intent is recognised as sent
# Refused or reported failed with a retryable error (throttled, a provider in trouble, a
# phone without signal), an SMS is retried this long after it was queued ("retried until a
# permanent outcome"); then it fails with the last code.
RETRY_WINDOW_SECONDS = 24 * 3600.0
# A provider that took an SMS and then reported a failure worth trying again (the phone had
# no signal, the SIM no credit) gets it again this much later, as a new send of it, doubling
# with each such failure up to the cap: a phone out of credit for a day is sent each SMS
# about 50 times, not 2,880.
REPORTED_RETRY_SECONDS = 30.0
REPORTED_RETRY_CAP_SECONDS = 1800.0


def reported_retry_delay(generation: int) -> float:
    """How long after its `generation`-th reported failure (0: the first send's) an SMS goes again."""
    return min(REPORTED_RETRY_CAP_SECONDS, REPORTED_RETRY_SECONDS * float(2 ** min(generation, 32)))


_OUR_ID = re.compile(r"([0-9a-f]{32})(?:\.([1-9][0-9]{0,3}))?")
DRAIN_FLAG_TTL_MS = 60_000  # a send job that died frees its lane's slot after this
QUEUE_CHUNK = 500  # messages per script call when queuing a large audience

_LUA_RANK = "local rank = {" + ", ".join(f"{status}={n}" for status, n in RANK.items()) + "}\n"

# KEYS: lane list, lane drain flag, the history's index of every message (today's) and its set
# of the intent's SMS, then per SMS its message hash, its recipient's subscriber hash and the
# history's index of that recipient.  ARGV: kind, force ("1": even if stopped),
# now, ttl, flag ttl ms, intent, who to tell if it cannot be delivered ("" no one) and what,
# the history's score and expiry, then per SMS (recipient, id, body).
# Each SMS notes the channel its recipient texted through last (`ch`: its way back), and
# the provider's channel prefix their address had there (`pre`, e.g. "whatsapp"), and for the
# history their country code (`cc`, "+98").
# Returns {queued, 1 if the caller must enqueue a send job}.
_QUEUE = (
    history.LUA_INDEX
    + """
local n = 0
for j = 0, (#KEYS - 4) / 3 - 1 do
  local key, sub, by_texter = KEYS[5 + 3 * j], KEYS[6 + 3 * j], KEYS[7 + 3 * j]
  local recipient, id, body = ARGV[11 + 3 * j], ARGV[12 + 3 * j], ARGV[13 + 3 * j]
  if redis.call('EXISTS', key) == 0 then
    local s = redis.call('HMGET', sub, 'phone', 'stopped', 'paused', 'ch', 'pre', 'cc')
    local stopped = s[2] == '1' and ARGV[2] ~= '1'
    local paused = s[3] == '1' and ARGV[1] ~= 'answer'
    if s[1] and not stopped and not paused then
      redis.call('HSET', key, 'r', recipient, 'body', body, 'kind', ARGV[1], 'force', ARGV[2],
                 'intent', ARGV[6], 'status', 'queued', 'attempts', 0, 'created', ARGV[3],
                 'ch', s[4] or '', 'pre', s[5] or '', 'cc', s[6] or '')
      if ARGV[7] ~= '' then redis.call('HSET', key, 'nto', ARGV[7], 'notice', ARGV[8]) end
      redis.call('EXPIRE', key, ARGV[4])
      redis.call('RPUSH', KEYS[1], id)
      redis.call('ZADD', KEYS[3], ARGV[9], 'out-' .. id)
      kb_index(by_texter, ARGV[9], 'out-' .. id, ARGV[10])
      redis.call('SADD', KEYS[4], id)
      n = n + 1
    end
  end
end
local schedule = 0
if n > 0 then
  for i = 3, 4 do redis.call('EXPIREAT', KEYS[i], ARGV[10]) end
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[5]) then schedule = 1 end
end
return {n, schedule}
"""
)

# KEYS: message, sending zset, stats, the reporting provider's health, the delayed zsets of
# the replies and the fanout lanes, today's history indexes of this status, of retried and of
# opted-out SMS, and (only when the recipient opted out) their subscriber hash.
# ARGV: our status, the provider's id, error code, now, message id, "1" if the recipient
# opted out, the reporting provider, which send of the SMS it reports on, "1" if the failure
# is worth retrying, when to retry, the oldest creation time still retried, the history's
# score and expiry, the report's neutral outcome.
# Returns -1 unknown message, 0 nothing newer, 1 recorded, 2 queued again to retry.
_CALLBACK = (
    _LUA_RANK
    + history.LUA_INDEX
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'r', 'sid', 'gen', 'kind', 'created')
if not cur[1] then return -1 end
-- A provider whose SMS arrive is not in trouble, whatever its API said before.
if ARGV[1] == 'sent' or ARGV[1] == 'delivered' then redis.call('HDEL', KEYS[4], 'reports_failing') end
if (cur[4] or '0') ~= ARGV[8] then return 0 end  -- about an earlier send of it: long settled
-- Any report proves the provider took the message: it is no longer "outcome unknown".
redis.call('ZREM', KEYS[2], ARGV[5])
if not cur[3] and ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'sid', ARGV[2]) end
if ARGV[9] == '1' and (cur[1] == 'sent' or cur[1] == 'sending')
   and tonumber(cur[6] or '0') >= tonumber(ARGV[11]) then
  -- A failure worth retrying: queued again as a new send (the provider knows the old one).
  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[3], 'updated', ARGV[4], 'sid', '')
  redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('HINCRBY', KEYS[1], 'refused', 1)
  local delayed = KEYS[5]
  if cur[5] == 'fanout' then delayed = KEYS[6] end
  redis.call('ZADD', delayed, ARGV[10], ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'retried', 1)
  redis.call('HINCRBY', KEYS[3], 'retried@' .. ARGV[7], 1)
  kb_index(KEYS[8], ARGV[12], 'out-' .. ARGV[5], ARGV[13])
  -- Counts towards failing over: a phone without credit or signal still takes every SMS.
  redis.call('HSETNX', KEYS[4], 'reports_failing', ARGV[4])
  return 2
end
if rank[ARGV[1]] <= rank[cur[1]] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[1] == 'sent' then redis.call('HSETNX', KEYS[1], 't_sent', ARGV[4]) end
if rank[ARGV[1]] == 3 then
  redis.call('HSET', KEYS[1], 't_done', ARGV[4], 'oc', ARGV[14])
  kb_index(KEYS[7], ARGV[12], 'out-' .. ARGV[5], ARGV[13])
  if ARGV[6] == '1' then kb_index(KEYS[9], ARGV[12], 'out-' .. ARGV[5], ARGV[13]) end
  local outcome = ARGV[1]
  if ARGV[3] ~= '' then outcome = outcome .. ':' .. ARGV[3] end
  redis.call('HINCRBY', KEYS[3], outcome, 1)
  redis.call('HINCRBY', KEYS[3], outcome .. '@' .. ARGV[7], 1)
end
if ARGV[6] == '1' then redis.call('HSET', KEYS[10], 'stopped', '1') end
return 1
"""
)


@dataclass(frozen=True)
class OutboundSMS:
    """One queued SMS as stored: who (a subscriber id, never a number), what, and how it went."""

    id: str
    recipient: int
    body: str
    kind: str
    intent: str
    status: str
    attempts: int
    error: str | None  # the provider's error code, a label (Twilio's are numbers, the phone's words)
    provider_id: str | None  # the provider's id for it, once it took it


@dataclass(frozen=True)
class Outbox:
    """Where SMS go: Redis, the RQ queues, what links and lengths need, and how many SMS
    one texter may cause (`limits`)."""

    redis: Redis
    rq_queues: Mapping[str, Queue]
    public_url: str = ""
    max_segments: int = 2
    default_channel: str = "twilio"  # the way to texters whose channel is not known
    limits: Limits = Limits()
    history_days: int = history.DEFAULT_DAYS  # HISTORY_DAYS: how long its SMS stay in the history

    @classmethod
    def of(cls, runtime: Runtime) -> Outbox:
        """The outbox of a runtime: its Redis, its queues, its links and SMS lengths."""
        config = runtime.config
        return cls(
            runtime.redis,
            runtime.queues,
            config.public_url,
            config.sms_max_segments,
            config.sms_providers[0],
            config.limits,
            config.history_days,
        )

    def queue_each(self, messages: Sequence[tuple[int, str, str]], kind: str) -> int:
        return queue_each(self.redis, self.rq_queues, messages, kind=kind, history_days=self.history_days)

    def queue(
        self,
        messages: list[tuple[int, str]],
        intent: str,
        kind: str,
        force: bool = False,
        notice: tuple[int, str] | None = None,
    ) -> int:
        return queue(
            self.redis,
            self.rq_queues,
            messages,
            intent=intent,
            kind=kind,
            even_if_stopped=force,
            notice=notice,
            history_days=self.history_days,
        )


def message_id(intent: str, recipient: int) -> str:
    """The id of the SMS for `intent` to `recipient`: opaque, URL-safe, the same every time."""
    return hashlib.sha256(f"{intent}\n{recipient}".encode()).hexdigest()[:32]


def provider_message_id(message_id: str, generation: int) -> str:
    """The id a provider knows our SMS by: ours, and after a failure it reported and we
    retry, which send of it this is ("<id>.1"): a provider may hold the first one still."""
    return f"{message_id}.{generation}" if generation else message_id


def our_message_id(provider_id: str) -> tuple[str, int] | None:
    """(our message id, which send) named by a provider's report; None if not one of ours."""
    found = _OUR_ID.fullmatch(provider_id)
    return (found.group(1), int(found.group(2) or 0)) if found else None


def enqueue_send_job(
    rq_queues: Mapping[str, Queue], lane: str, at: float | None = None, helper: int = 0
) -> None:
    """Ask a worker to send the lane's waiting SMS (at unix time `at`, or now); `helper` n > 0:
    as the lane's n-th helper job (`sender.call_helpers`)."""
    # A wait of a second or so is slept off inside the job: no need for RQ's scheduler.
    later = at if at is not None and at > time.time() + 2.0 else None
    job, what = queues.send_sms(lane), f"send sms ({lane}" + (f", helper {helper})" if helper else ")")
    if helper:
        queues.enqueue(rq_queues, job, lane, helper, description=what, at=later)
    else:
        queues.enqueue(rq_queues, job, lane, description=what, at=later)


def queue(
    redis: Redis,
    rq_queues: Mapping[str, Queue],
    messages: Sequence[tuple[int, str]],
    *,
    intent: str,
    kind: str,
    even_if_stopped: bool = False,
    notice: tuple[int, str] | None = None,
    history_days: int = history.DEFAULT_DAYS,
) -> int:
    """Queue SMS (recipient subscriber id, text). Returns how many were queued.

    At most once per (intent, recipient): queuing the same intent for the same recipient
    again does nothing. Skips recipients who are stopped (unless `even_if_stopped`, for
    HELP answers), paused (unless `kind` is "answer"), or forgotten. One script call per
    500 messages, and one send job per lane, however large the audience. `notice`: who to
    tell, and what, should an SMS be dropped because its recipient stopped or paused
    before it went (`tell_undelivered`).
    """
    lane = _lane(kind)
    script, now = scripts.load(redis, _QUEUE), time.time()
    found = []
    for start in range(0, len(messages), QUEUE_CHUNK):
        chunk = messages[start : start + QUEUE_CHUNK]
        script_keys, args = _queue_call(lane, kind, even_if_stopped, now, intent, notice, chunk, history_days)
        found.append(script(keys=script_keys, args=args))
    return _queued(redis, rq_queues, lane, found)


def queue_each(
    redis: Redis,
    rq_queues: Mapping[str, Queue],
    messages: Sequence[tuple[int, str, str]],
    *,
    kind: str,
    history_days: int = history.DEFAULT_DAYS,
) -> int:
    """Queue SMS that each have an intent of their own (recipient, text, intent), such as a
    batch's welcomes, in one round trip (and one more to count them); otherwise as `queue`.
    Returns how many were queued."""
    if not messages:
        return 0
    lane = _lane(kind)
    script, now = scripts.load(redis, _QUEUE), time.time()
    pipe = redis.pipeline(transaction=False)
    for recipient, body, intent in messages:
        one = [(recipient, body)]
        script_keys, args = _queue_call(lane, kind, False, now, intent, None, one, history_days)
        script(keys=script_keys, args=args, client=pipe)
    return _queued(redis, rq_queues, lane, pipe.execute())


def _lane(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return LANE_OF_KIND[kind]


def _queue_call(
    lane: str,
    kind: str,
    force: bool,
    now: float,
    intent: str,
    notice: tuple[int, str] | None,
    messages: Sequence[tuple[int, str]],
    history_days: int = history.DEFAULT_DAYS,
) -> tuple[list[str], list[str | int]]:
    """The _QUEUE script's keys and arguments for `messages` (recipient, text) of one intent."""
    script_keys = [keys.outbound_lane(lane), keys.outbound_drain_scheduled(lane)]
    script_keys += [history.index(now, history.ALL), keys.history_sms_of(intent)]
    args: list[str | int] = [kind, "1" if force else "0", f"{now:.3f}", MESSAGE_TTL_SECONDS]
    args += [DRAIN_FLAG_TTL_MS, intent, *(notice if notice else ("", ""))]
    args += [history.score(now), history.expire_at(now, history_days)]
    for recipient, body in messages:
        mid = message_id(intent, int(recipient))
        script_keys += [keys.outbound_message(mid), keys.subscriber(int(recipient))]
        script_keys += [history.index(now, history.by_texter(int(recipient)))]
        args += [int(recipient), mid, body]
    return script_keys, args


def _queued(redis: Redis, rq_queues: Mapping[str, Queue], lane: str, found: Sequence[Sequence[Any]]) -> int:
    """Count what the _QUEUE calls queued ({queued, schedule} each) and start a send job if
    one asked for it; returns how many were queued."""
    queued = sum(int(n) for n, _ in found)
    if queued:
        stats.record(redis, f"in:sms-{lane}", queued)
    if any(int(schedule) for _, schedule in found):
        enqueue_send_job(rq_queues, lane)
    return queued


def tell_undelivered(redis: Redis, rq_queues: Mapping[str, Queue], message_id: str) -> bool:
    """Queue the notice of an SMS that will not be delivered (its recipient stopped or paused
    after it was queued) to whoever it names: a direct message's sender. Once per SMS."""
    to, text = cast(list[str | None], redis.hmget(keys.outbound_message(message_id), "nto", "notice"))
    if not to or not text:
        return False
    return queue(redis, rq_queues, [(int(to), text)], intent=f"undelivered:{message_id}", kind="answer") > 0


def mark_stopped(redis: Redis, sub_id: int, stopped: bool) -> None:
    """Record that a subscriber opted out (STOP, or their provider says so) or back in (START).

    SMS already queued for them are dropped when their turn comes while they are stopped.
    """
    if stopped:
        redis.hset(keys.subscriber(sub_id), "stopped", "1")
    else:
        redis.hdel(keys.subscriber(sub_id), "stopped")


def message_status(redis: Redis, message_id: str) -> str | None:
    """queued / sending / sent / delivered / undelivered / failed / cancelled; None if unknown."""
    return cast(str | None, redis.hget(keys.outbound_message(message_id), "status"))


def get(redis: Redis, message_id: str) -> OutboundSMS | None:
    """The stored SMS, or None."""
    h = cast(dict[str, str], redis.hgetall(keys.outbound_message(message_id)))
    if not h:
        return None
    return OutboundSMS(
        id=message_id,
        recipient=int(h["r"]),
        body=h.get("body", ""),
        kind=h.get("kind", ""),
        intent=h.get("intent", ""),
        status=h.get("status", ""),
        attempts=int(h.get("attempts", 0)),
        error=h.get("error") or None,
        provider_id=h.get("sid") or None,
    )


def record_report(
    redis: Redis,
    rq_queues: Mapping[str, Queue],
    provider_id: str,
    report: DeliveryReport,
    provider: str,
    history_days: int = history.DEFAULT_DAYS,
) -> str:
    """Apply `provider`'s report on our SMS (`provider_id`: what it calls it, see
    `provider_message_id`): "recorded", "stale" (nothing newer), "retry" (queued again) or
    "unknown". A direct message refused because its recipient opted out tells its sender,
    as a refusal by the API at once does (`tell_undelivered`).

    Repeats and reports out of order are harmless: a status never moves back (a late
    "sent" leaves "delivered" alone), and a report on an earlier send of a retried SMS
    changes nothing. A report for a message still "sending" settles it. A failure the
    provider reports with a retryable error (within RETRY_WINDOW_SECONDS of queuing) queues
    the SMS again, to go `reported_retry_delay` later.
    """
    ours = our_message_id(provider_id)
    if not report.status or ours is None:
        return "stale" if ours else "unknown"
    message_id, generation = ours
    now = time.time()
    opted_out = report.outcome == OPTED_OUT
    retry = "1" if report.outcome == RETRY and report.status in (FAILED, UNDELIVERED) else "0"
    message_key = keys.outbound_message(message_id)
    delayed = [keys.outbound_delayed("replies"), keys.outbound_delayed("fanout")]
    script_keys = [message_key, keys.OUTBOUND_SENDING, keys.OUTBOUND_STATS, keys.provider(provider), *delayed]
    script_keys += [history.index(now, history.by_outcome(o)) for o in (report.status, RETRY, OPTED_OUT)]
    if opted_out:
        # The script marks the recipient stopped, so it must name their hash: read who it is
        # first (rare, and safe: the id is derived from its recipient, who never changes).
        recipient = redis.hget(message_key, "r")
        opted_out = recipient is not None  # else the SMS is gone, and the script says "unknown"
        script_keys += [keys.subscriber(str(recipient))] if opted_out else []
    result = scripts.load(redis, _CALLBACK)(
        keys=script_keys,
        args=[report.status, report.provider_id, report.code, f"{now:.3f}", message_id,
              "1" if opted_out else "0", provider, generation, retry,
              f"{now + reported_retry_delay(generation):.3f}", f"{now - RETRY_WINDOW_SECONDS:.3f}",
              history.score(now), history.expire_at(now, history_days), report.outcome],
    )  # fmt: skip
    if int(result) == 1 and opted_out:
        tell_undelivered(redis, rq_queues, message_id)
    return {-1: "unknown", 0: "stale", 1: "recorded", 2: "retry"}[int(result)]
