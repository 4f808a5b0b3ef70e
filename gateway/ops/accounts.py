"""Operator accounts: salted password hashes in Redis, and lockout after failed logins.

`kabootar ops add-user NAME` stores werkzeug's `generate_password_hash` of a password
(read with getpass, or one line from stdin with `--password-stdin`). After
`MAX_FAILURES` failed logins for a name, or from an address, within `LOCKOUT_SECONDS`,
both are refused for `LOCKOUT_SECONDS` — without checking the password, so guessing
on stops costing us hashing and teaches the guesser nothing. The "address" here is
`auth.client_key("login")`, a keyed hash: no client's address is stored.
"""

from __future__ import annotations

import functools
import getpass
import re
import sys
from dataclasses import dataclass
from typing import cast

from redis import Redis
from redis.exceptions import RedisError
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


def remove_user(redis: Redis, name: str) -> bool:
    """Delete an operator; their open sessions end at their next request."""
    return bool(redis.hdel(keys.OPS_USERS, _name(name)))


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


def _redis() -> Redis:
    """REDIS_URL's Redis or, when it is unset, the one `kabootar run` started for this
    checkout: on its usual port, and only if its data directory is our var/redis."""
    from gateway.box.supervisor import REDIS_PORT
    from gateway.config import Config

    config = Config.from_env()
    if config.redis_url:
        return Redis.from_url(config.redis_url, decode_responses=True, socket_connect_timeout=2)
    redis = Redis(port=REDIS_PORT, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
    expected = str((config.var_dir / "redis").resolve())
    if redis.config_get("dir").get("dir") != expected:
        raise RedisError(f"the Redis on port {REDIS_PORT} is not the one `kabootar run` started here")
    return redis


def add_user_command(name: str, password_stdin: bool, redis: Redis | None = None) -> int:
    """`kabootar ops add-user NAME [--password-stdin]` (gateway.cli parses the arguments)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != password:
            print("kabootar: the passwords differ", file=sys.stderr)
            return 1
    try:
        add_user(redis or _redis(), name, password)
    except ValueError as e:
        print(f"kabootar: {e}", file=sys.stderr)
        return 1
    except RedisError as e:
        print(
            f"kabootar: {e}. Is `make run` running? Else set REDIS_URL to the URL it printed.",
            file=sys.stderr,
        )
        return 2
    print(f"operator {_name(name)} can now log in at /ops/login")
    return 0
