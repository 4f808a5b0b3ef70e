"""Operators' console sessions, kept in Redis so that they can be ended.

The cookie carries only a random session id (inside Flask's signed cookie); Redis keeps
its SHA-256 with the operator's name for `LIFETIME_SECONDS`, so a copied cookie stops
working the moment the session is ended: by logging out, a new password or removing the
account. Redis never holds an id itself, so reading Redis gives no one a session.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import cast

from redis import Redis
from redis.client import Pipeline

from gateway.store import keys

LIFETIME_SECONDS = 12 * 3600


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(redis: Redis, name: str, checked: str) -> str | None:
    """A new session for operator `name`, whose password was just checked against the hash
    `checked`; its id, for the cookie. None if that hash is no longer theirs: a new password
    (or the account removed) while the old one was being checked ends every session, and
    must not miss one started a moment later on the strength of the old password."""
    session_id = secrets.token_urlsafe(32)
    digest = _digest(session_id)

    def create(pipe: Pipeline) -> bool:
        if pipe.hget(keys.OPS_USERS, name) != checked:
            return False
        pipe.multi()
        pipe.set(keys.ops_session(digest), name, ex=LIFETIME_SECONDS)
        pipe.sadd(keys.ops_sessions_of(name), digest)
        pipe.expire(keys.ops_sessions_of(name), LIFETIME_SECONDS)  # outlives each session it lists
        return True

    # Watched: a password set between the read and the write makes this read again.
    started = redis.transaction(create, keys.OPS_USERS, value_from_callable=True)  # type: ignore[arg-type]  # redis-py types the callable as returning None
    return session_id if started else None


def operator(redis: Redis, session_id: str) -> str | None:
    """The operator whose live session this is, or None."""
    return cast(str | None, redis.get(keys.ops_session(_digest(session_id))))


def end(redis: Redis, session_id: str) -> None:
    """End one session (logging out). Its digest may stay listed in the operator's sessions:
    `end_all` deleting a session already gone does nothing, and the list expires by itself."""
    redis.delete(keys.ops_session(_digest(session_id)))


def end_all(redis: Redis, name: str) -> None:
    """End every session of operator `name` (a new password, the account removed)."""
    listed = keys.ops_sessions_of(name)

    def end_listed(pipe: Pipeline) -> None:
        digests = cast(set[str], pipe.smembers(listed))
        pipe.multi()
        pipe.delete(listed, *(keys.ops_session(d) for d in digests))

    # Watched: a login at this very moment is either ended too or retried, never missed.
    redis.transaction(end_listed, listed)
