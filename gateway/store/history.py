"""Message history: what became of each text received and each SMS sent, kept HISTORY_DAYS.

Written where the facts happen, inside the script calls and pipelines that already run
(commands added, no round trip): the intake script notes a text received and stored, the
drain batch what it made of it (a post, a command, held), the outbox's scripts each step
of an SMS (queued, sending, sent, delivered / failed, retried). Read by the console
(`gateway/ops/history.py`): a page of the newest matching messages, and one's timeline.

Records. A received text's is a small hash (`keys.history_inbound`): when it was received
and stored, its channel, its sender's masked country code ("+98", nothing more), and once
processed, its texter's id and the post or command it made (never a direct message's text,
never the number: a post's text is read from the post itself, so DELETE and FORGET ME
erase it there). An SMS's record is its own outbox hash, to which the scripts add `t_go`,
`t_sent`, `t_done` (the times of its steps), `oc` (the provider's neutral outcome) and `cc`
(its recipient's country code, which the drain batch notes on each texter).

Indexes. One sorted set per day (unix time // 86400) and filter value, of history ids
("in-<sid>", "out-<id>") scored by a time in ms: every message ("all"), by provider
("p:twilio"), texter ("h:<subscriber id>"), and outcome ("o:failed"). A direction has no
index of its own: half of all messages, it is found by checking those of "all" (an entry
per message less, about 100 bytes). Texter and provider entries carry the message's time;
outcome entries the time the outcome happened (a failure is listed when it failed), and
only outcomes that settle something (INDEXED_OUTCOMES: "sent" would be wrong by the next
report). Entries never move: a reader checks each candidate's record against every filter,
so an entry a later change made stale is skipped, not shown. Each day's keys and each
text's record expire HISTORY_DAYS after their day ends (set by the drain batch, which every
stored text reaches: the webhook's script stays short), so storage is bounded by the
retention; an SMS's outbox hash lives its own 14 days.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from gateway.config import PROVIDERS
from gateway.store import keys, scripts

DAY_SECONDS = 86400
DEFAULT_DAYS = 7
# An SMS's record is its outbox hash, which lives 14 days (outbound.MESSAGE_TTL_SECONDS):
# history cannot be kept longer than that.
MAX_DAYS = 14

ALL = "all"
# Outcomes with an index of their own; others ("sent", "queued", "waiting") are found by
# checking the records on the index of every message.
INDEXED_OUTCOMES = (
    *("delivered", "undelivered", "failed", "cancelled", "retry", "opted_out"),  # SMS
    *("post", "command", "held"),  # received texts
)

# A Lua helper for the scripts that write history: KEYS of the caller must include `key`.
LUA_INDEX = """
local function kb_index(key, score, member, expire_at)
  redis.call('ZADD', key, score, member)
  redis.call('EXPIREAT', key, expire_at)
end
"""


# Reading many small hashes at once: one script call instead of a command each (the console
# reads up to 500 records per page; packing and parsing a command apiece is what costs there).
# KEYS: the hashes.  ARGV: a field to read (or "": every field but those named after it; an
# SMS that carried a post leaves out its body too, which is the post's text).
_READ = """
local skip = {}
for i = 2, #ARGV do skip[ARGV[i]] = true end
local out = {}
for i, key in ipairs(KEYS) do
  if ARGV[1] ~= '' then out[i] = redis.call('HGET', key, ARGV[1]) or false
  else
    local flat, kept, carried = redis.call('HGETALL', key), {}, false
    for j = 1, #flat, 2 do
      if flat[j] == 'intent' and string.sub(flat[j + 1], 1, 5) == 'post:' then carried = true end
    end
    for j = 1, #flat, 2 do
      if not skip[flat[j]] and not (carried and flat[j] == 'body') then
        kept[#kept + 1] = flat[j]
        kept[#kept + 1] = flat[j + 1]
      end
    end
    out[i] = kept
  end
end
return out
"""
# What no history page shows of an SMS: the provider's own id for it, its channel prefix,
# the notice to its sender should it fail, bookkeeping.
_NOT_SHOWN = ("sid", "pre", "nto", "notice", "force", "gen", "segments")


def read_records(redis: Redis, hashes: Sequence[str]) -> list[dict[str, str]]:
    """The records of messages ({} for one that is gone), as the console shows them (see
    _READ), in one script call."""
    if not hashes:
        return []
    found = scripts.load(redis, _READ)(keys=list(hashes), args=["", *_NOT_SHOWN])
    return [dict(zip(flat[0::2], flat[1::2], strict=True)) for flat in found]


def read_field(redis: Redis, hashes: Sequence[str], field: str) -> list[str | None]:
    """One field of each hash (None where it has none), in one script call."""
    return list(scripts.load(redis, _READ)(keys=list(hashes), args=[field])) if hashes else []


def day_of(t: float) -> int:
    return int(t // DAY_SECONDS)


def expire_at(t: float, days: int) -> int:
    """When what was written about time `t` expires: `days` after the end of its day."""
    return (day_of(t) + 1 + days) * DAY_SECONDS


def score(t: float) -> int:
    """An index score: the time in ms."""
    return int(t * 1000)


def index(t: float, name: str) -> str:
    """The key of index `name` for the day of time `t`."""
    return keys.history_index(day_of(t), name)


def by_provider(provider: str) -> str:
    return f"p:{provider}"


def by_outcome(outcome: str) -> str:
    return f"o:{outcome}"


def by_texter(sub_id: int | str) -> str:
    return f"h:{sub_id}"


def inbound_id(sid: str) -> str:
    return f"in-{sid}"


def outbound_id(message_id: str) -> str:
    return f"out-{message_id}"


@dataclass(frozen=True)
class Processed:
    """What a drain batch made of one received text."""

    sid: str
    received_at: float
    sub_id: int
    result: str  # "post", "command", "held" or "deferred" (over the posting rate: posted later)
    channel: str = ""  # the provider it came through
    country: str = ""  # its sender's country code ("+98"), noted on the texter for their SMS
    post_id: int | None = None
    command: str = ""  # the command's name ("follow", "dm"): never its text


def note_processed(pipe: Pipeline, done: Iterable[Processed], days: int, now: float | None = None) -> None:
    """Add to the batch's pipeline what became of its texts (texter, post or command), and
    the expiry of everything the history holds of them: the intake script leaves that to
    the batch, which every stored text reaches, to keep the webhook's script short."""
    now = time.time() if now is None else now
    expiring: dict[str, int] = {}
    for p in done:
        record, member, until = keys.history_inbound(p.sid), inbound_id(p.sid), expire_at(p.received_at, days)
        pipe.hset(record, mapping={"sub": p.sub_id, "pr": f"{now:.3f}", "res": p.result})
        if p.post_id is not None:
            pipe.hset(record, "post", p.post_id)
        if p.command:
            pipe.hset(record, "cmd", p.command)
        if p.country:  # what the SMS queued to them note (see outbound's queue script)
            pipe.hset(keys.subscriber(p.sub_id), "cc", p.country)
        expiring[record] = until
        listed = [by_texter(p.sub_id)] + ([by_outcome(p.result)] if p.result in INDEXED_OUTCOMES else [])
        for name in listed:
            pipe.zadd(index(p.received_at, name), {member: score(p.received_at)})
        for name in [*listed, ALL, by_provider(p.channel)]:
            expiring[index(p.received_at, name)] = until
    for key, until in expiring.items():
        pipe.expireat(key, until)


def _index_names(sub_ids: Iterable[int | str] = ()) -> list[str]:
    names = [ALL, *(by_provider(p) for p in PROVIDERS), *(by_outcome(o) for o in INDEXED_OUTCOMES)]
    return names + [by_texter(s) for s in sub_ids]


def _days_kept(now: float) -> range:
    today = day_of(now)
    return range(today - MAX_DAYS - 1, today + 2)


def erase(redis: Redis, history_ids: Sequence[str], sub_id: int | None = None) -> None:
    """Erase messages from the history: their entries in every index (whatever day they were
    written on), received texts' records and the sets of the SMS they caused (`sub_id`: the
    texter, when the records may not name them yet). An SMS's own record is its outbox hash,
    which the outbox's FORGET ME erases."""
    if not history_ids:
        return
    sids = [h.removeprefix("in-") for h in history_ids if h.startswith("in-")]
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hmget(keys.history_inbound(sid), "sub", "post")
    caused = []
    for sid, (sub, post) in zip(sids, pipe.execute(), strict=True):
        caused += [keys.history_sms_of(f"{kind}:{sid}") for kind in ("answer", "held", "cancelled")]
        caused += [keys.history_sms_of(f"dm:{who}:{sid}") for who in {sub, sub_id} if who is not None]
        caused += [keys.history_sms_of(f"post:{post}")] if post else []
    names = _index_names([sub_id] if sub_id is not None else [])
    for day in _days_kept(time.time()):
        for name in names:
            pipe.zrem(keys.history_index(day, name), *history_ids)
    if sids:
        pipe.delete(*caused, *(keys.history_inbound(s) for s in sids))
    pipe.execute()


def erase_post(redis: Redis, sid: str, post_id: int) -> None:
    """DELETE: the text that made a post, and the SMS that carried it to followers, leave the
    history (the post's text itself is erased with the post)."""
    intent = keys.history_sms_of(f"post:{post_id}")
    carried = [outbound_id(str(m)) for m in redis.smembers(intent)]
    erase(redis, [inbound_id(sid), *carried] if sid else carried)
    redis.delete(intent)


def forget_texter(redis: Redis, sub_id: int, sids: Sequence[str] = ()) -> int:
    """FORGET ME: erase every message of this texter from the history: those its index of
    them lists, and their texts `sids` (those of the batch that erased them, not yet listed).
    Returns how many messages were erased."""
    days = _days_kept(time.time())
    pipe = redis.pipeline(transaction=False)
    for day in days:
        pipe.zrange(keys.history_index(day, by_texter(sub_id)), 0, -1)
    listed = [str(m) for members in pipe.execute() for m in members]
    found = list(dict.fromkeys([*listed, *(inbound_id(s) for s in sids)]))
    for start in range(0, len(found), 500):
        erase(redis, found[start : start + 500], sub_id)
    redis.delete(keys.history_sms_of(f"welcome:{sub_id}"))
    redis.delete(*(keys.history_index(day, by_texter(sub_id)) for day in days))
    return len(found)
