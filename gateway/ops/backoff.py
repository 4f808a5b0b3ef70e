"""Growing waits after failed operator logins: guessing gets slow, yet no one can lock
an operator out.

Failures are counted in three scopes, each a small Redis hash (keys.ops_login_backoff):

- pair: one account from one address. After `PAIR_FREE` failures each further try from
  that address for that account waits 1 s, then 2, 4, … up to OPS_LOGIN_MAX_WAIT. This is
  what stops a guesser hammering one operator's password.
- addr: one address, any account. After `ADDR_FREE` failures, the same doubling: spraying
  many names from one address gets no further.
- account: one account from anywhere. Its wait never exceeds `ACCOUNT_MAX_WAIT`, a few
  seconds: it slows a guesser spread over many addresses, while no guesser can keep the
  operator, trying from elsewhere, waiting longer than that.

A browser the operator logged in from before (it holds their signed device cookie, see
auth.py) is counted apart, in a scope of its own alone, like a pair: guessers elsewhere,
however many, never make the operator wait there at all (OWASP's "device cookies").

A try while a wait runs is refused before its password is looked at (no hashing spent,
nothing learnt) and is not counted, so hammering does not lengthen the wait. Nothing is
ever locked: when the wait is over, the right password works. A try is counted as a
failure the moment it is let in and forgiven if it was right, so tries sent at once
cannot all be checked before the first failure is counted. Addresses arrive here as keyed
hashes (auth.client_key), so Redis never holds one.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from redis import Redis

from gateway.store import keys, scripts

PAIR_FREE = 3  # typos an operator may make before waiting at all
ADDR_FREE = 10  # an office behind one address: several operators' typos
ACCOUNT_FREE = 5
ACCOUNT_MAX_WAIT = 3.0  # the longest a guesser elsewhere can make an operator wait
FORGET_SECONDS = 24 * 3600  # failures are forgotten a day after the last one

clock = time.time  # tests move it


@dataclass(frozen=True)
class Scope:
    """One way of counting failures: after `free` of them, waits double from 1 s to `max_wait`."""

    name: str
    free: int
    max_wait: float


@dataclass(frozen=True)
class Counted:
    """The Redis key that counts one login try in one scope."""

    scope: Scope
    key: str


def counters(name: str, client: str, max_wait: float, device: str = "") -> list[Counted]:
    """What a login try for operator `name` from `client` (a keyed hash) counts against;
    from a browser that holds `name`'s device cookie (`device`: its id), that device alone."""
    if device:
        digest = hashlib.sha256(f"{device}\0{name}".encode()).hexdigest()[:24]
        return [Counted(Scope("device", PAIR_FREE, max_wait), keys.ops_login_backoff("device", digest))]
    pair = hashlib.sha256(f"{client}\0{name}".encode()).hexdigest()[:24]
    return [
        Counted(Scope("pair", PAIR_FREE, max_wait), keys.ops_login_backoff("pair", pair)),
        Counted(Scope("addr", ADDR_FREE, max_wait), keys.ops_login_backoff("addr", client)),
        Counted(Scope("account", ACCOUNT_FREE, ACCOUNT_MAX_WAIT), keys.ops_login_backoff("account", name)),
    ]


# KEYS: a hash per scope.  ARGV: now, FORGET_SECONDS, then each scope's free tries and
# longest wait.  Refused while any scope's wait runs: returns {seconds left}.  Else counts
# the try in each scope, starts the wait it earns should it fail, and returns {"0", then
# per scope the `until` it wrote ("" if none) and the one before} for `forgive`.
_ADMIT = """
local now = tonumber(ARGV[1])
local left = 0
for _, key in ipairs(KEYS) do
  left = math.max(left, tonumber(redis.call('HGET', key, 'until') or '0') - now)
end
if left > 0 then return {tostring(left)} end
local undo = {'0'}
for i, key in ipairs(KEYS) do
  local before = redis.call('HGET', key, 'until') or ''
  local over = redis.call('HINCRBY', key, 'n', 1) - tonumber(ARGV[2 * i + 1])
  local untl = ''
  if over > 0 then
    untl = tostring(now + math.min(tonumber(ARGV[2 * i + 2]), 2 ^ (over - 1)))
    redis.call('HSET', key, 'until', untl)
  end
  redis.call('EXPIRE', key, ARGV[2])
  table.insert(undo, untl)
  table.insert(undo, before)
end
return undo
"""
# KEYS: the address's hash, then those to forget.  ARGV: the `until` _ADMIT wrote to the
# address's hash and the one before.  A wait that a failure at the same moment started stays.
_FORGIVE = """
redis.call('HINCRBY', KEYS[1], 'n', -1)
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'until') == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('HDEL', KEYS[1], 'until')
  else
    redis.call('HSET', KEYS[1], 'until', ARGV[2])
  end
end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
"""


@dataclass(frozen=True)
class Admission:
    """Whether a login try may be checked: `wait` > 0 says no, for how many seconds."""

    wait: int
    undo: tuple[str, ...] = ()  # per scope: the `until` admitting wrote, and the one before


def admit(redis: Redis, counted: list[Counted]) -> Admission:
    """Refuse a try while a wait runs; else let it in, counted as a failure until forgiven."""
    args: list[float | int] = [clock(), FORGET_SECONDS]
    for c in counted:
        args += [c.scope.free, c.scope.max_wait]
    found = [str(v) for v in scripts.load(redis, _ADMIT)(keys=[c.key for c in counted], args=args)]
    if found[0] != "0":
        return Admission(wait=max(1, math.ceil(float(found[0]))))
    return Admission(wait=0, undo=tuple(found[1:]))


def forgive(redis: Redis, counted: list[Counted], admission: Admission) -> None:
    """The try was right: forget the account's failures, but only this try of the address's
    (one good account must not launder an address that guesses at others)."""
    addr = [n for n, c in enumerate(counted) if c.scope.name == "addr"]
    if not addr:  # a known device: its own count only, all forgotten
        redis.delete(*(c.key for c in counted))
        return
    [i] = addr
    forgotten = [c.key for c in counted if c.scope.name != "addr"]
    written, before = admission.undo[2 * i], admission.undo[2 * i + 1]
    scripts.load(redis, _FORGIVE)(keys=[counted[i].key, *forgotten], args=[written, before])
