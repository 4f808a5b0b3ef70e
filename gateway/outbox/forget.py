"""FORGET ME in the outbox: every stored SMS that concerns a forgotten texter, erased.

Outbound SMS are stored by message id alone, so this scans them all: fine for a rare
request, and a job (`workers.jobs.forget_outbound`) keeps it off the hot path. Until it
runs, SMS already queued to the texter cannot go: the sender finds no number to send to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from redis import Redis

from gateway.store import history, keys, scripts
from gateway.store.queues import LANES

SCAN_COUNT = 1000

# KEYS: a lane.  ARGV: message ids to take out of it.  One pass over the list, atomic, so a
# send job claiming from the lane meanwhile sees it before or after, never half-rebuilt.
_DROP_FROM_LANE = """
local drop = {}
for i = 1, #ARGV do drop[ARGV[i]] = true end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
for _, id in ipairs(ids) do if not drop[id] then keep[#keep + 1] = id end end
if #keep == #ids then return 0 end
redis.call('DEL', KEYS[1])
for i = 1, #keep, 1000 do redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 999, #keep))) end
return #ids - #keep
"""


def forget_outbound(redis: Redis, sub_id: int, post_ids: Sequence[int], handle: str = "") -> int:
    """Erase the stored SMS of a forgotten subscriber: to them, their direct messages, their
    posts' fan-out, and (given their old `handle`) others' SMS that name them.

    Returns how many were erased.
    """
    intents = {f"post:{p}" for p in post_ids}
    dm_prefix = f"dm:{sub_id}:"
    named = f"@{handle}".casefold() if handle else None
    erased = 0
    for batch in _scan_batches(redis, keys.outbound_message("") + "*"):
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.hmget(key, "r", "intent", "body")
        doomed = {
            key: intent
            for key, (recipient, intent, body) in zip(batch, pipe.execute(), strict=True)
            if recipient == str(sub_id)
            or intent in intents
            or (intent or "").startswith(dm_prefix)
            or (named is not None and named in (body or "").casefold())
        }
        if doomed:
            erased += int(redis.delete(*doomed))
            ids = {key.removeprefix(keys.outbound_message("")): intent for key, intent in doomed.items()}
            from_lanes(redis, list(ids))
            history.erase(redis, [history.outbound_id(i) for i in ids])
            for message_id, intent in ids.items():  # the SMS its text's timeline would list
                pipe.srem(keys.history_sms_of(intent or ""), message_id)
            pipe.execute()
    return erased


def _scan_batches(redis: Redis, match: str) -> Iterator[list[str]]:
    cursor = 0
    while True:
        cursor, found = redis.scan(cursor, match=match, count=SCAN_COUNT)
        if found:
            yield [str(k) for k in found]
        if cursor == 0:
            return


def from_lanes(redis: Redis, message_ids: Sequence[str]) -> None:
    """Take erased SMS ids out of every lane, retry set and the "sending" set."""
    if not message_ids:
        return
    script = scripts.load(redis, _DROP_FROM_LANE)
    pipe = redis.pipeline(transaction=False)
    for lane in LANES:
        script(keys=[keys.outbound_lane(lane)], args=list(message_ids), client=pipe)
        pipe.zrem(keys.outbound_delayed(lane), *message_ids)
    pipe.zrem(keys.OUTBOUND_SENDING, *message_ids)
    pipe.execute()
