"""FORGET ME in the pipeline: what the inbox still holds of a texter who asked to be forgotten.

`microblog.account.forget` erases the texter's own records and `outbox.forget` the SMS
that concern them; here go the texts they sent that still wait to be posted (throttled
ones in the deferred set, or ones still in the inbox or a drain job's claim) and their
place in the throttle, and their history (`store.history.forget_texter`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from redis import Redis

from gateway.pipeline import throttle
from gateway.pipeline.intake import INBOX
from gateway.store import history, keys


def texter(
    redis: Redis, sub_id: int, lookup_key: str, forget_sid: str, batch_sids: Sequence[str] = ()
) -> int:
    """Forget what the pipeline holds of the texter whose FORGET ME is the text `forget_sid`:
    their waiting texts (see `waiting_texts`), their throttle counters and their history
    (every text and SMS of theirs it lists, and `batch_sids`, their texts in the batch that
    erased them). Returns how many texts were erased."""
    throttle.forget(redis, sub_id)
    erased = waiting_texts(redis, lookup_key, forget_sid)
    history.forget_texter(redis, sub_id, [forget_sid, *batch_sids])
    return erased


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
    deferred, inbox = cast(list[list[str]], pipe.execute())
    claimed = INBOX.claimed(redis)  # batches other drain jobs hold (ours included)
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
    history.erase(redis, [history.inbound_id(sid) for sid in doomed])
    return len(doomed)
