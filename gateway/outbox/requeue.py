"""An operator's retry of SMS that failed: each goes out again as a new send.

Only an SMS whose send ended "failed" or "undelivered" is queued again, and only to a
recipient who still receives SMS: one who stopped (STOP, or the carrier's opt-out, which
the outbox records as a stop), is paused (OFF) or is forgotten is skipped. A retried SMS
gets a new generation, as a provider's report of a retryable failure gives it
(`outbound.record_report`): reports about the failed send change nothing afterwards, and
the provider sees a new message id. It waits in its lane's delayed set, due now, where the
workers' watchdog finds it within a second; the sender checks the recipient again just
before the call, so a STOP that arrives meanwhile still wins.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from gateway.store import keys, scripts

RETRIED, SKIPPED, NOT_FAILED = 1, -1, 0

# KEYS: the message, its recipient's subscriber hash, the replies lane's and the fanout
# lane's delayed sets, the outbox's counters. ARGV: id, now.
# Returns 1 queued again, -1 its recipient does not receive SMS now, 0 not a failed SMS.
_REQUEUE = """
local m = redis.call('HMGET', KEYS[1], 'status', 'kind')
if m[1] ~= 'failed' and m[1] ~= 'undelivered' then return 0 end
local s = redis.call('HMGET', KEYS[2], 'phone', 'stopped', 'paused')
if not s[1] or s[2] == '1' or s[3] == '1' then return -1 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'updated', ARGV[2], 'sid', '', 'error', '', 'attempts', 0)
redis.call('HDEL', KEYS[1], 't_done', 'oc')
redis.call('HINCRBY', KEYS[1], 'gen', 1)
local delayed = KEYS[3]
if m[2] == 'fanout' then delayed = KEYS[4] end
redis.call('ZADD', delayed, ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'requeued', 1)
return 1
"""


@dataclass(frozen=True)
class Failed:
    """A failed SMS as the console found it: our id and its recipient's subscriber id."""

    message_id: str
    recipient: str


def retry_failed(redis: Redis, found: Sequence[Failed]) -> list[int]:
    """Queue these failed SMS again (one round trip); per SMS, RETRIED, SKIPPED (its
    recipient does not receive SMS now) or NOT_FAILED (it is not failed any more)."""
    if not found:
        return []
    now = f"{time.time():.3f}"
    script = scripts.load(redis, _REQUEUE)
    pipe = redis.pipeline(transaction=False)
    for sms in found:
        script_keys = [
            keys.outbound_message(sms.message_id),
            keys.subscriber(sms.recipient),
            keys.outbound_delayed("replies"),
            keys.outbound_delayed("fanout"),
            keys.OUTBOUND_STATS,
        ]
        script(keys=script_keys, args=[sms.message_id, now], client=pipe)
    return [int(x) for x in pipe.execute()]


def receiving(redis: Redis, recipients: Sequence[str]) -> dict[str, bool]:
    """Whether each recipient receives SMS now (known, not stopped, not paused): what a
    retry's dry run counts (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for sub_id in recipients:
        pipe.hmget(keys.subscriber(sub_id), "phone", "stopped", "paused")
    return {
        sub_id: bool(phone) and stopped != "1" and paused != "1"
        for sub_id, (phone, stopped, paused) in zip(recipients, pipe.execute(), strict=True)
    }
