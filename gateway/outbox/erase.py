"""FORGET ME's sweeps through the pipelines: what a forgotten texter left waiting in them.

`account.forget` erases the texter's own records; these find what is still on its way:
texts they sent that wait to be posted (throttled ones in the deferred set, or ones still
in the inbox), and SMS ids that wait in the outbound lanes and retry sets after
`account.forget_outbound` erased the messages themselves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from redis import Redis

from gateway.outbox import outbound
from gateway.store import keys, scripts

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


def waiting_texts(redis: Redis, lookup_key: str, forget_sid: str = "") -> int:
    """Erase the texts from this number that wait to be posted and arrived no later than the
    FORGET ME text `forget_sid` (which its own batch finishes). Returns how many.

    Without this, a throttled text would be posted a minute after FORGET ME, under a new
    handle, re-registering the number the texter asked us to forget. Texts that arrived
    after FORGET ME are a new start, theirs to make, and stay.
    """
    at = redis.hget(keys.inbound_message(forget_sid), "at") if forget_sid else None
    until = float(str(at)) if at else time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.zrange(keys.INBOX_DEFERRED, 0, -1)
    pipe.lrange(keys.INBOX, 0, -1)
    pipe.zrange(keys.INBOX_CLAIMS, 0, -1)
    deferred, inbox, tokens = cast(list[list[str]], pipe.execute())
    for token in tokens:  # batches other drain jobs hold (ours included)
        pipe.lrange(keys.inbox_claim(token), 0, -1)
    claimed = [sid for found in cast(list[list[str]], pipe.execute()) for sid in found]
    sids = [sid for sid in dict.fromkeys([*deferred, *inbox, *claimed]) if sid != forget_sid]
    for sid in sids:
        pipe.hmget(keys.inbound_message(sid), "from_key", "at")
    doomed = [
        sid
        for sid, (from_key, received) in zip(sids, cast(list[list[str]], pipe.execute()), strict=True)
        if from_key == lookup_key and float(received or 0) <= until
    ]
    if not doomed:
        return 0
    pipe = redis.pipeline(transaction=True)
    pipe.delete(*(keys.inbound_message(sid) for sid in doomed))  # a drain skips a sid with no text
    pipe.zrem(keys.INBOX_DEFERRED, *doomed)
    for sid in doomed:
        pipe.lrem(keys.INBOX, 0, sid)
    pipe.execute()
    return len(doomed)


def from_lanes(redis: Redis, message_ids: Sequence[str]) -> None:
    """Take erased SMS ids out of every lane, retry set and the "sending" set."""
    if not message_ids:
        return
    script = scripts.load(redis, _DROP_FROM_LANE)
    pipe = redis.pipeline(transaction=False)
    for lane in outbound.LANES:
        script(keys=[keys.outbound_lane(lane)], args=list(message_ids), client=pipe)
        pipe.zrem(keys.outbound_delayed(lane), *message_ids)
    pipe.zrem(keys.OUTBOUND_SENDING, *message_ids)
    pipe.execute()
