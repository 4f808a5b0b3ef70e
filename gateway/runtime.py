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
from gateway.store import connect, queues
from gateway.store.replicated import Replication

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

    @cached_property
    def replication(self) -> Replication:
        """How many replicas a promised write must reach (REDIS_WAIT_REPLICAS)."""
        return Replication(self.config.redis_wait_replicas, self.config.redis_wait_timeout_ms)

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        """Settings checked, and clients of the Redis named by REDIS_URL or REDIS_SENTINELS."""
        config = config.with_secret_key()
        config.check_providers()  # never serve a provider with no credentials (or simulator)
        return cls(
            config=config,
            redis=connect.client(config),
            vault=PhoneVault(config.secret_key),
            rq_redis=connect.client(config, decode=False),
        )

    @staticmethod
    def of(app: HasExtensions) -> Runtime:
        """The Runtime a web app was made with (`gateway.web.create_app`)."""
        return cast(Runtime, app.extensions[EXTENSION])
