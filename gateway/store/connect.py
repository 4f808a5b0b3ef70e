"""Kabootar's Redis clients, made in one place from the settings.

REDIS_URL names one Redis. REDIS_SENTINELS names the Sentinels that watch a primary and its
replicas: the client (redis-py's `Sentinel.master_for`) asks them for the primary's address
each time it opens a connection, and drops its connections when a demoted primary refuses a
write or the primary stops answering. With redis-py's retries (several, backing off up to a
second) a command in flight during a failover is sent again to whichever primary the
Sentinels then name, so no process needs a restart; one that still fails surfaces as a
RedisError, which a webhook answers with 503.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.sentinel import Sentinel

from gateway.config import Config

# A command waits at most this long for its answer (a Redis that stopped answering fails fast
# enough for a webhook to say 503 within a provider's patience); a connection this long.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
# Asking a Sentinel: one that is down must not hold up asking the next.
SENTINEL_TIMEOUT = 1.0


NOT_CONFIGURED = (
    "REDIS_URL is not set (nor REDIS_SENTINELS): use `kabootar run` to start Redis as well, or set it"
)


class NoRedisConfigured(RuntimeError):
    """Neither REDIS_URL nor REDIS_SENTINELS is set."""


def client(config: Config, decode: bool = True, timeouts: bool = True) -> Redis:
    """A new client of Kabootar's Redis (its primary, with Sentinels). `decode`: replies as
    str (everything Kabootar stores itself), else bytes (RQ's pickles). `timeouts=False`
    leaves the reply timeout to the caller (RQ raises it to fit its blocking waits)."""
    options: dict[str, Any] = {"decode_responses": decode, "socket_connect_timeout": CONNECT_TIMEOUT}
    if timeouts:
        options["socket_timeout"] = SOCKET_TIMEOUT
    if config.redis_sentinels:
        primary: Redis = sentinels(config).master_for(
            config.redis_sentinel_master, password=config.redis_password or None, **options
        )
        return primary
    if config.redis_url:
        return Redis.from_url(config.redis_url, **options)
    raise NoRedisConfigured(NOT_CONFIGURED)


def sentinels(config: Config, timeout: float = SENTINEL_TIMEOUT, decode: bool = False) -> Sentinel:
    """redis-py's Sentinel over REDIS_SENTINELS (with REDIS_SENTINEL_PASSWORD, if set)."""
    return Sentinel(
        list(config.redis_sentinels),
        sentinel_kwargs={
            "password": config.redis_sentinel_password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": decode,
        },
    )


def describe(config: Config) -> str:
    """Where Kabootar's Redis is, for messages and var/run.json (never a password)."""
    if config.redis_sentinels:
        where = ",".join(f"{host}:{port}" for host, port in config.redis_sentinels)
        return f"sentinel://{where}/{config.redis_sentinel_master}"
    return config.redis_url or ""
