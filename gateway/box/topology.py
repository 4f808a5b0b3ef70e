"""What `kabootar run` starts: the processes of one box (`make run`) or of the local HA
topology (`kabootar run --ha`, `make ha`), each a `Child` of the supervisor.

One box: the embedded Redis (unless REDIS_URL is set), WORKERS workers, one web process
on HOST:PORT. HA: three Redis servers (a primary and two replicas, append-only files on),
three Sentinels, WORKERS workers and two web processes on local ports, all started with
REDIS_SENTINELS (and REDIS_URL naming the primary they started with), behind HAProxy on
HOST:PORT. Children are listed in the order they start; `STOP_ORDER` says how they stop.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.box import embedded_redis, haproxy, replication
from gateway.config import Config, ConfigError

CLI = [sys.executable, "-m", "gateway.box.cli"]
REDIS_PORT = 6390  # tried first, so `redis-cli -p 6390` finds the dev Redis; else any free port
HA_REDIS_PORT = 6391  # `make ha`: 6391-6393 for the Redis servers, 26391-26393 for the Sentinels
HA_SENTINEL_PORT = 26391
HA_WEB_PROCESSES = 2
# The proxy stops taking requests first, then the web processes finish theirs, the workers
# their jobs; Sentinels stop before the Redis servers (or they would fail one over), the
# replicas before the primary.
STOP_ORDER = ("proxy", "web", "worker", "sentinel", "replica", "redis")


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    kind: str  # one of STOP_ORDER
    argv: list[str]
    popen: dict[str, Any] = field(default_factory=dict)
    port: int = 0  # where it listens (a web process's /readyz)
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float | None = None


@dataclass
class Topology:
    config: Config  # as the children run with it (Redis filled in)
    children: list[Child]  # in start order
    proxy: haproxy.RuntimeApi | None = None
    sentinel_ports: list[int] = field(default_factory=list)
    nodes: list[replication.Node] = field(default_factory=list)
    scratch: Path | None = None  # a private temp dir (HAProxy's admin socket), removed at stop

    @property
    def ha(self) -> bool:
        return self.proxy is not None

    def of_kind(self, *kinds: str) -> list[Child]:
        return [c for c in self.children if c.kind in kinds]


def port_problem(host: str, port: int) -> str | None:
    """Why we cannot listen on host:port, or None when we can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _local_port(preferred: int, taken: set[int]) -> int:
    """`preferred` if free on 127.0.0.1, else any free port (never one in `taken`)."""
    port = preferred
    while port in taken or port_problem("127.0.0.1", port) is not None:
        port = embedded_redis.free_port()
    taken.add(port)
    return port


def _env(config: Config, **more: str) -> dict[str, str]:
    import os

    return {**os.environ, **config.as_env(), "PYTHONUNBUFFERED": "1", **more}


def _workers(config: Config, env: dict[str, str]) -> list[Child]:
    return [
        Child(f"worker-{i}", "worker", [*CLI, "worker"], {"env": env}) for i in range(1, config.workers + 1)
    ]


def single(config: Config) -> Topology:
    """One box: the embedded Redis unless REDIS_URL or REDIS_SENTINELS names one, the workers,
    one web process."""
    children = []
    if not (config.redis_url or config.redis_sentinels):
        port = _local_port(REDIS_PORT, set())
        data = config.var_dir / "redis"
        children.append(Child("redis", "redis", [], {"data_dir": data, "port": port}, port))
        config = replace(config, redis_url=f"redis://127.0.0.1:{port}/0")
    env = _env(config)
    children += _workers(config, env)
    children.append(Child("web", "web", [*CLI, "web"], {"env": env}, config.port))
    return Topology(config, children)


def ha(config: Config) -> Topology:
    """The local HA topology (see the module's docstring)."""
    if config.redis_url or config.redis_sentinels:
        raise ConfigError(
            "`kabootar run --ha` starts its own Redis and Sentinels: unset REDIS_URL and REDIS_SENTINELS"
        )
    proxy_binary = haproxy.binary()
    ha_dir = config.var_dir / "ha"
    taken = {config.port}
    primary = replication.primary_name(ha_dir)
    nodes = [
        replication.Node(f"redis-{i}", _local_port(HA_REDIS_PORT + i - 1, taken), ha_dir / f"redis-{i}")
        for i in range(1, replication.REDIS_NODES + 1)
    ]
    nodes.sort(key=lambda n: n.name != primary)  # the primary first
    children = [
        Child(
            nodes[0].name, "redis", [], {"data_dir": nodes[0].data_dir, "port": nodes[0].port}, nodes[0].port
        )
    ]
    for node in nodes[1:]:
        replica_of = ("--replicaof", "127.0.0.1", str(nodes[0].port))
        popen = {"data_dir": node.data_dir, "port": node.port, "extra": replica_of}
        children.append(Child(node.name, "replica", [], popen, node.port))
    sentinel_ports = []
    for i in range(1, replication.SENTINELS + 1):
        port = _local_port(HA_SENTINEL_PORT + i - 1, taken)
        work = ha_dir / f"sentinel-{i}"
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "sentinel.conf"  # written afresh: the primary may have moved since the last run
        conf.write_text(replication.sentinel_conf(port, work, config.redis_sentinel_master, nodes[0].port))
        server = str(embedded_redis.server_binary())
        children.append(
            Child(f"sentinel-{i}", "sentinel", [server, str(conf.resolve()), "--sentinel"], {}, port)
        )
        sentinel_ports.append(port)
    config = replace(
        config,
        redis_url=f"redis://127.0.0.1:{nodes[0].port}/0",
        redis_sentinels=tuple(("127.0.0.1", p) for p in sentinel_ports),
        # The web processes listen on 127.0.0.1 only, so every request comes through HAProxy.
        trusted_proxies=config.trusted_proxies + 1,  # HAProxy is one more hop in front
    )
    env = _env(config)
    children += _workers(config, env)
    webs = []
    for i in range(1, HA_WEB_PROCESSES + 1):
        port = _local_port(config.port + i, taken)
        web_env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
        webs.append(Child(f"web-{i}", "web", [*CLI, "web"], {"env": web_env}, port))
    children += webs
    # A short private path: a Unix socket's path is limited to ~100 bytes, var/ may be deeper.
    scratch = Path(tempfile.mkdtemp(prefix="kabootar-"))
    admin = scratch / "haproxy.sock"
    bind = f"[{config.host}]:{config.port}" if ":" in config.host else f"{config.host}:{config.port}"
    cfg = ha_dir / "haproxy.cfg"
    cfg.write_text(haproxy.config(bind, [(w.name, w.port) for w in webs], admin))
    children.append(
        Child("haproxy", "proxy", [proxy_binary, "-db", "-f", str(cfg.resolve())], {}, config.port)
    )
    return Topology(config, children, haproxy.RuntimeApi(admin), sentinel_ports, nodes, scratch)
