"""The things every part of Kabootar is handed: settings, one Redis client, the phone vault.

The web app keeps its Runtime in `app.extensions["kabootar"]`; a worker process builds
one at start-up. Domain functions take the pieces they need as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from gateway.config import Config
from gateway.phones import PhoneVault


@dataclass(frozen=True)
class Runtime:
    config: Config
    redis: Redis
    vault: PhoneVault

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        config = config.with_secret_key()
        if not config.redis_url:
            raise RuntimeError("REDIS_URL is not set: start Kabootar with `kabootar run`")
        redis = Redis.from_url(
            config.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        return cls(config=config, redis=redis, vault=PhoneVault(config.secret_key))
