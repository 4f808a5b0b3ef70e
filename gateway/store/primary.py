"""Which Redis a process reaches, whether it takes writes, and when the primary changed.

A failover (Sentinel promoting a replica) or a restart puts a different Redis process
behind the app: a new run_id. Whoever looks (each worker's watchdog every second, the
console at each refresh) records in one Lua call the primary it reaches and when it last
took a write there; the first to reach a new one records the change, and how long writes
failed around it: from the last write seen on the old primary to the first on the new,
to within a second. The record is a key like any other, replicated with the data, so the
promoted replica inherits the old primary's last sighting and the failover survives itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.exceptions import ReadOnlyError, ResponseError

from gateway.store import keys, scripts

SEEN_EVERY = 1.0  # seconds between writes of "seen_at": one write a second, however many look

# KEYS[1]: keys.REDIS_PRIMARY. ARGV: run_id, address, now, SEEN_EVERY. Returns 1 on a change.
_RECORD = """
local known = redis.call('HMGET', KEYS[1], 'run_id', 'address', 'seen_at')
local now = tonumber(ARGV[3])
if known[1] == ARGV[1] then
  if now - tonumber(known[3] or 0) >= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'seen_at', ARGV[3])
  end
  return 0
end
if known[1] then
  local down = math.max(0, now - tonumber(known[3] or ARGV[3]))
  redis.call('HSET', KEYS[1], 'changed_at', ARGV[3], 'changed_from', known[2] or '',
             'down_for', string.format('%.3f', down))
end
redis.call('HSET', KEYS[1], 'run_id', ARGV[1], 'address', ARGV[2], 'seen_at', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Reached:
    """The Redis server a client's connection lands on, as it describes itself."""

    role: str  # "primary" or "replica"
    refused: str  # "" while it takes writes; else why not, in Redis's words (READONLY, NOREPLICAS …)
    run_id: str  # this server process's id: a restart or a failover changes it
    address: str  # host:port, as this process reaches it
    replication: dict[str, Any]  # INFO replication, as redis-py reads it

    @property
    def writable(self) -> bool:
        return self.role == "primary" and not self.refused


@dataclass(frozen=True)
class Change:
    """The last time a different primary took writes."""

    at: float  # when the new primary was first seen taking writes
    before: str  # the old primary's address
    after: str  # the new one's (the one recorded now, if none came since)
    down_for: float  # seconds from the last write seen on the old one to then

    @property
    def kind(self) -> str:
        """ "failover" to another server; "restart" of the one at the same address."""
        return "restart" if self.before == self.after else "failover"


def _refusal(error: BaseException) -> str:
    # redis-py turns "-READONLY …" into a ReadOnlyError and drops the word; others keep it.
    return f"READONLY {error}" if isinstance(error, ReadOnlyError) else str(error)


def reach(redis: Redis) -> Reached:
    """One round trip: the server's role and identity, and whether it would take a write.

    The write test deletes a key that never exists: refused exactly when a write would be
    (a read-only replica, `min-replicas-to-write` unmet, a failed disk), and it writes
    nothing, so asking costs no fsync.
    """
    pipe = redis.pipeline(transaction=False)
    pipe.info("replication")
    pipe.info("server")
    pipe.client_info()
    pipe.delete(keys.WRITE_PROBE)
    replication, server, client, probe = pipe.execute(raise_on_error=False)
    for answer in (replication, server):
        if isinstance(answer, Exception):
            raise answer
    if isinstance(client, ResponseError):  # CLIENT INFO came with Redis 6.2
        kwargs = redis.connection_pool.connection_kwargs
        address = f"{kwargs.get('host', '')}:{kwargs.get('port', '')}"
    else:
        address = str(client["laddr"])
    return Reached(
        role="primary" if replication["role"] == "master" else "replica",
        refused=_refusal(probe) if isinstance(probe, Exception) else "",
        run_id=str(server["run_id"]),
        address=address,
        replication=replication,
    )


def observe(redis: Redis, now: float | None = None) -> Reached:
    """`reach`, and on a primary taking writes record it: a new one is a change of primary."""
    reached = reach(redis)
    if reached.writable:
        now = time.time() if now is None else now
        args: list[str | float] = [reached.run_id, reached.address, f"{now:.3f}", SEEN_EVERY]
        try:
            scripts.load(redis, _RECORD)(keys=[keys.REDIS_PRIMARY], args=args)
        except ResponseError:
            pass  # it stopped taking writes a moment ago: the next look sees that
    return reached


def last_change(redis: Redis) -> Change | None:
    """The last change of primary recorded, if any."""
    found = cast(dict[str, str], redis.hgetall(keys.REDIS_PRIMARY))
    if "changed_at" not in found:
        return None
    return Change(
        at=float(found["changed_at"]),
        before=found.get("changed_from", ""),
        after=found.get("address", ""),
        down_for=float(found.get("down_for", 0)),
    )
