"""Operator accounts: salted password hashes in Redis, and lockout after failed logins.

`kabootar ops add-user NAME` (gateway/box/cli.py) stores werkzeug's `generate_password_hash`
of a password. After
`MAX_FAILURES` failed logins for a name, or from an address, within `LOCKOUT_SECONDS`,
both are refused for `LOCKOUT_SECONDS` — without checking the password, so guessing
on stops costing us hashing and teaches the guesser nothing. The "address" here is
`auth.client_key("login")`, a keyed hash: no client's address is stored.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import cast

from redis import Redis
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.store import keys

MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60
MIN_PASSWORD_LENGTH = 10
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so an unknown name takes as long as a wrong password."""
    return generate_password_hash("kabootar-no-such-operator")


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    locked: bool = False


def _name(name: str) -> str:
    return name.strip().lower()


def add_user(redis: Redis, name: str, password: str) -> None:
    """Create an operator, or set a new password for an existing one."""
    name = _name(name)
    if not NAME_PATTERN.match(name):
        raise ValueError("a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    redis.hset(keys.OPS_USERS, name, generate_password_hash(password))
    redis.delete(keys.ops_login_failures("name", name))


def exists(redis: Redis, name: str) -> bool:
    return bool(redis.hexists(keys.OPS_USERS, _name(name)))


def _failure_keys(name: str, address: str) -> list[str]:
    return [keys.ops_login_failures("name", name[:64]), keys.ops_login_failures("addr", address[:64])]


def is_locked(redis: Redis, name: str, address: str) -> bool:
    """Whether logins for this name, or from this address, are refused right now."""
    counts = redis.mget(_failure_keys(_name(name), address))
    return any(int(c or 0) >= MAX_FAILURES for c in counts)


def verify(redis: Redis, name: str, password: str, address: str) -> LoginResult:
    """Check a login. Counts a failure against the name and the address; a success
    clears the name's count (the address's stays: one good account must not launder
    an address that guesses at others)."""
    name = _name(name)
    failure_keys = _failure_keys(name, address)
    if is_locked(redis, name, address):
        return LoginResult(ok=False, locked=True)
    stored = cast(str | None, redis.hget(keys.OPS_USERS, name)) if NAME_PATTERN.match(name) else None
    if check_password_hash(stored or _dummy_hash(), password) and stored:
        redis.delete(failure_keys[0])
        return LoginResult(ok=True)
    pipe = redis.pipeline(transaction=False)
    for key in failure_keys:
        pipe.incr(key)
        # Each failure restarts the window, so the lock lasts 15 minutes from the last one.
        pipe.expire(key, LOCKOUT_SECONDS)
    counts = pipe.execute()[::2]
    return LoginResult(ok=False, locked=any(c >= MAX_FAILURES for c in counts))
