"""The Redis side of `make ha`: one primary and two replicas, each with an append-only file,
watched by three Sentinels (the embedded redis-server binary in sentinel mode: real Sentinel).

Which node is the primary is kept in var/ha/primary across runs: after a failover the
promoted replica holds the newest data, so the next `make ha` starts it as the primary
(the others resynchronise from it) instead of overwriting it from the old one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import MasterNotFoundError

from gateway.config import Config
from gateway.store import connect

REDIS_NODES = 3  # one primary, two replicas
SENTINELS = 3  # a quorum of 2 agrees a primary is down
QUORUM = 2
# Local and quick: a primary silent for 5 s is failed over (production: see the README).
DOWN_AFTER_MS = 5_000
FAILOVER_TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class Node:
    """One Redis server of the topology."""

    name: str  # redis-1 … redis-3
    port: int
    data_dir: Path


def primary_name(ha_dir: Path) -> str:
    """The node that was the primary when the last `make ha` stopped (redis-1 at first)."""
    try:
        name = (ha_dir / "primary").read_text().strip()
    except OSError:
        return "redis-1"
    return name if name in {f"redis-{i}" for i in range(1, REDIS_NODES + 1)} else "redis-1"


def remember_primary(ha_dir: Path, nodes: list[Node], config: Config) -> None:
    """Ask the Sentinels which node is the primary now, and keep its name for the next run."""
    try:
        _, port = connect.sentinels(config).discover_master(config.redis_sentinel_master)
    except (MasterNotFoundError, RedisError):
        return
    for node in nodes:
        if node.port == port:
            (ha_dir / "primary").write_text(node.name + "\n")


def sentinel_conf(port: int, work_dir: Path, master: str, primary_port: int) -> str:
    """A Sentinel's configuration; Sentinel rewrites it as it learns (replicas, other Sentinels)."""
    return (
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                "daemonize no",
                f"dir {work_dir.resolve()}",
                f"logfile {(work_dir / 'sentinel.log').resolve()}",
                f"sentinel monitor {master} 127.0.0.1 {primary_port} {QUORUM}",
                f"sentinel down-after-milliseconds {master} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {master} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {master} 1",
            ]
        )
        + "\n"
    )


def wait_until_watched(sentinels: list[int], master: str, timeout: float = 30) -> bool:
    """Wait until every Sentinel knows the others and both replicas (a failover can then happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            views = [_view(port, master) for port in sentinels]
        except RedisError:
            views = []
        if views and all(v == (SENTINELS - 1, REDIS_NODES - 1) for v in views):
            return True
        time.sleep(0.5)
    return False


def _view(port: int, master: str) -> tuple[int, int]:
    """(other Sentinels, replicas) that the Sentinel on `port` knows of."""
    client = Redis(port=port, socket_timeout=1, decode_responses=True)
    try:
        state: dict[str, Any] = client.sentinel_master(master)  # type: ignore[assignment]
    finally:
        client.close()
    return int(state["num-other-sentinels"]), int(state["num-slaves"])
