"""The things every part of Kabootar is handed: settings, the Redis clients, the phone vault.

The web app keeps its Runtime in `app.extensions["kabootar"]` (`Runtime.of(app)` reads it);
a worker process builds one at start-up. Domain functions take the pieces they need as
arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, cast

from redis import Redis
from rq import Queue

from gateway.config import Config
from gateway.phones import PhoneVault
from gateway.store import queues

EXTENSION = "kabootar"


class HasExtensions(Protocol):
    """A Flask app, as far as finding its Runtime goes."""

    extensions: dict[str, Any]


@dataclass(frozen=True)
class Runtime:
    config: Config
    redis: Redis  # replies decoded to str: everything Kabootar reads and writes itself
    vault: PhoneVault
    rq_redis: Redis  # RQ stores pickles: a client that does not decode replies

    @cached_property
    def queues(self) -> dict[str, Queue]:
        """The RQ queues, by name (`gateway.store.queues.ALL`)."""
        return queues.make(self.rq_redis)

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        config = config.with_secret_key()
        config.check_providers()  # never serve a provider with no credentials (or simulator)
        if not config.redis_url:
            raise RuntimeError("REDIS_URL is not set: start Kabootar with `kabootar run`")
        options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2}
        return cls(
            config=config,
            redis=Redis.from_url(config.redis_url, decode_responses=True, **options),
            vault=PhoneVault(config.secret_key),
            rq_redis=Redis.from_url(config.redis_url, **options),
        )

    @staticmethod
    def of(app: HasExtensions) -> Runtime:
        """The Runtime a web app was made with (`gateway.web.create_app`)."""
        return cast(Runtime, app.extensions[EXTENSION])
