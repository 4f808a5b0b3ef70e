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

A try while a wait runs is refused before its password is looked at (no hashing spent,
nothing learnt) and is not counted, so hammering does not lengthen the wait. Nothing is
ever locked: when the wait is over, the right password works. Addresses arrive here as
keyed hashes (auth.client_key), so Redis never holds one.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from redis import Redis

from gateway.store import keys

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

    def wait_after(self, failures: int) -> float:
        over = failures - self.free
        return 0.0 if over <= 0 else min(self.max_wait, 2.0 ** (over - 1))


@dataclass(frozen=True)
class Counted:
    """The Redis key that counts one login try in one scope."""

    scope: Scope
    key: str


def counters(name: str, client: str, max_wait: float) -> list[Counted]:
    """What a login try for operator `name` from `client` (a keyed hash) counts against."""
    pair = hashlib.sha256(f"{client}\0{name}".encode()).hexdigest()[:24]
    return [
        Counted(Scope("pair", PAIR_FREE, max_wait), keys.ops_login_backoff("pair", pair)),
        Counted(Scope("addr", ADDR_FREE, max_wait), keys.ops_login_backoff("addr", client)),
        Counted(Scope("account", ACCOUNT_FREE, ACCOUNT_MAX_WAIT), keys.ops_login_backoff("account", name)),
    ]


def wait(redis: Redis, counted: list[Counted]) -> int:
    """Whole seconds before a try may be checked (0: now)."""
    untils = redis.pipeline(transaction=False)
    for c in counted:
        untils.hget(c.key, "until")
    latest = max(float(u or 0) for u in untils.execute())
    return max(0, math.ceil(latest - clock()))


def failed(redis: Redis, counted: list[Counted]) -> None:
    """Count a wrong password in every scope, and start the waits that count earned."""
    pipe = redis.pipeline(transaction=False)
    for c in counted:
        pipe.hincrby(c.key, "n", 1)
        pipe.expire(c.key, FORGET_SECONDS)
    failures = pipe.execute()[::2]
    now = clock()
    for c, n in zip(counted, failures, strict=True):
        if delay := c.scope.wait_after(int(n)):
            pipe.hset(c.key, "until", now + delay)
    pipe.execute()


def succeeded(redis: Redis, counted: list[Counted]) -> None:
    """The right password: forget the account's failures, but not the address's (one good
    account must not launder an address that guesses at others)."""
    redis.delete(*(c.key for c in counted if c.scope.name != "addr"))
