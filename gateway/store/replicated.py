"""Writes acknowledged only once replicated: Redis's WAIT, in the same round trip.

With replicas behind Sentinel, a write the primary took but had not yet passed on is lost
when the primary dies and a replica is promoted. So where Kabootar promises something (a
webhook's 200, an SMS marked "sending" before the provider is called, a post made exactly
once), the write is followed by `WAIT n timeout` on the same connection, in the same
pipeline, and the promise is made only if n replicas confirmed it (REDIS_WAIT_REPLICAS,
REDIS_WAIT_TIMEOUT_MS). WAIT covers every earlier write of the connection, and the
replication stream is ordered: a confirmed write carries all that came before it, by any
client, along with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

Call = tuple[list[Any], list[Any]]  # one script call's keys and arguments


class NotReplicated(RedisError):
    """A write reached the primary but not enough replicas in time: a failover could lose it,
    so it must not be acknowledged (a RedisError: every caller already answers those).
    `results` holds what the primary answered, for a caller that must undo or settle it."""

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


@dataclass(frozen=True)
class Replication:
    replicas: int = 0  # 0: a lone Redis, nothing to wait for
    timeout_ms: int = 500

    def execute(self, pipe: Pipeline) -> list[Any]:
        """Run `pipe` followed by WAIT; its results (without WAIT's), or NotReplicated."""
        if not self.replicas:
            return pipe.execute()
        pipe.wait(self.replicas, self.timeout_ms)
        *results, reached = pipe.execute()
        if int(reached) < self.replicas:
            raise NotReplicated(
                f"reached {reached} of {self.replicas} replicas in {self.timeout_ms} ms", results
            )
        return results

    def run(self, redis: Redis, script: Script, keys: list[Any], args: list[Any]) -> Any:
        """Call `script`, then WAIT, in one round trip; its result, or NotReplicated."""
        return self.run_many(redis, script, [(keys, args)])[0]

    def run_many(self, redis: Redis, script: Script, calls: Sequence[Call]) -> list[Any]:
        """Call `script` once per (keys, args), then WAIT, in one pipelined round trip (so, with
        appendfsync always, one fsync for all of them); their results in order. Raises
        NotReplicated, or the first call's error."""
        for _ in range(2):
            pipe = redis.pipeline(transaction=False)
            for keys, args in calls:
                # EVALSHA by hand: a Script run in a pipeline checks SCRIPT EXISTS first, every time.
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            if self.replicas:
                pipe.wait(self.replicas, self.timeout_ms)
            results: list[Any] = pipe.execute(raise_on_error=False)
            if not any(isinstance(r, NoScriptError) for r in results):
                break
            redis.script_load(script.script)  # a restarted or newly promoted primary forgot it
        if self.replicas:
            *results, reached = results
            if isinstance(reached, Exception) or int(reached) < self.replicas:
                raise NotReplicated(f"reached {reached} of {self.replicas} replicas", results)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


NONE = Replication()
