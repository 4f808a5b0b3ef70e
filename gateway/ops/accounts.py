"""Operator accounts: salted password hashes in Redis, and the check of a login.

`kabootar ops add-user NAME` (gateway/box/cli.py) stores werkzeug's `generate_password_hash`
of a password. Failed logins earn growing waits (backoff.py) rather than a lock, so a
guesser slows only themselves. A new password, or removing the account, ends the
operator's console sessions at once (sessions.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import cast

from redis import Redis
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.ops import backoff, sessions
from gateway.store import keys

MIN_PASSWORD_LENGTH = 10
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so an unknown name takes as long as a wrong password."""
    return generate_password_hash("kabootar-no-such-operator")


@dataclass(frozen=True)
class LoginResult:
    operator: str | None = None  # who logged in; None: refused
    wait: int = 0  # refused unchecked: seconds before this account may be tried from here
    checked: str = ""  # the password hash the login matched (see sessions.start)

    @property
    def ok(self) -> bool:
        return self.operator is not None


def normal_name(name: str) -> str:
    """A name as accounts stores it: trimmed, lower case."""
    return name.strip().lower()


def add_user(redis: Redis, name: str, password: str) -> None:
    """Create an operator, or set a new password for an existing one (ending their sessions)."""
    name = normal_name(name)
    if not NAME_PATTERN.match(name):
        raise ValueError("a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    redis.hset(keys.OPS_USERS, name, generate_password_hash(password))
    sessions.end_all(redis, name)  # whoever knew the old password is out
    redis.delete(keys.ops_login_backoff("account", name))


def set_password(redis: Redis, name: str, password: str) -> None:
    """A new password for an existing operator; LookupError if there is none of that name."""
    if not exists(redis, name):
        raise LookupError(f"there is no operator {normal_name(name)}")
    add_user(redis, name, password)


def remove_user(redis: Redis, name: str) -> bool:
    """Remove an operator and end their sessions; False if there was none of that name."""
    removed = bool(redis.hdel(keys.OPS_USERS, normal_name(name)))
    sessions.end_all(redis, normal_name(name))
    return removed


def exists(redis: Redis, name: str) -> bool:
    return bool(redis.hexists(keys.OPS_USERS, normal_name(name)))


def verify(
    redis: Redis, name: str, password: str, client: str, max_wait: float, device: str = ""
) -> LoginResult:
    """Check a login from `client` (a keyed hash of the address), unless a wait earned by
    earlier failures is still running: then refuse it unchecked and say how long. `device`:
    the id of the device cookie for this name the browser holds, if any (see backoff)."""
    name = normal_name(name)[:64]
    counted = backoff.counters(name, client, max_wait, device)
    admission = backoff.admit(redis, counted)
    if admission.wait:
        return LoginResult(wait=admission.wait)
    stored = cast(str | None, redis.hget(keys.OPS_USERS, name)) if NAME_PATTERN.match(name) else None
    if check_password_hash(stored or _dummy_hash(), password) and stored:
        backoff.forgive(redis, counted, admission)
        return LoginResult(operator=name, checked=stored)
    return LoginResult()
