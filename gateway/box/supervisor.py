"""`kabootar run`: a small supervisor that runs all of Kabootar on one box.

It starts the embedded Redis (unless REDIS_URL or REDIS_SENTINELS names one) with its data under var/,
then WORKERS workers and the web app as `kabootar worker` / `kabootar web` child
processes, restarts any child that dies (waiting longer each time one keeps dying),
and on Ctrl-C or SIGTERM stops them in order: the web app first (no new texts come
in), then the workers (a warm shutdown: running jobs finish), then Redis.

While it runs, var/run.json says which Redis it uses (`running_redis`), so that
`kabootar ops add-user` and the like find it whichever port it got.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only
this supervisor, which can then stop things in that order; and, on Linux, each
child is told to exit if the supervisor itself is killed, so nothing is orphaned.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.store import connect

REDIS_PORT = 6390  # tried first, so `redis-cli -p 6390` finds the dev Redis; else any free port
RUN_FILE = "run.json"  # in var/, while `kabootar run` runs: {"redis_url", "embedded"}
STOP_TIMEOUT = {"web": 15.0, "worker": 30.0, "redis": 15.0}  # then SIGKILL
MAX_BACKOFF = 30.0
STEADY_SECONDS = 10.0  # a child that ran this long before dying is restarted at once

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In a new child, before exec: ask Linux to SIGTERM it when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def say(message: str) -> None:
    print(f"kabootar run: {message}", flush=True)


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


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    kind: str  # "web", "worker" or "redis"
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float | None = None
    popen: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    """Runs Redis, the web app and the workers until told to stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = False
        self.hurry = False  # a second Ctrl-C: kill what is left instead of waiting
        self.children: list[Child] = []
        self.redis: Child | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and not self.hurry:
            say("stopping now, without waiting")
            self.hurry = True
        self.stopping = True

    def run(self) -> int:
        """Start everything, watch it, stop it on a signal; returns the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        config = self.config.with_secret_key()  # keeps a dev key in var/ when SECRET_KEY is unset
        try:
            # var/ holds the lock and Redis's data even when SECRET_KEY is set (then no key file made it).
            config.var_dir.mkdir(parents=True, exist_ok=True)
            lock = open(config.var_dir / "run.lock", "a+")  # held until this process exits
        except OSError as e:
            say(f"cannot use {config.var_dir}/ for Kabootar's data: {e.strerror}")
            return 1
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another `kabootar run` is already using {config.var_dir}/; stop it first")
            return 1
        problem = port_problem(config.host, config.port)
        if problem:
            say(f"cannot serve on {config.host}:{config.port}: {problem}.")
            say("Is Kabootar (or something else) already running there?")
            say(f"Try another port: PORT={config.port + 1} make run")
            return 1
        try:
            embedded = not (config.redis_url or config.redis_sentinels)
            if embedded:
                config = replace(config, redis_url=self._start_redis(config))
            elif config.redis_sentinels:
                say(f"Redis: the primary the Sentinels name ({connect.describe(config)})")
            _record_redis(config, embedded)
            env = {**os.environ, **config.as_env(), "PYTHONUNBUFFERED": "1"}
            cli = [sys.executable, "-m", "gateway.box.cli"]
            for i in range(1, config.workers + 1):
                self.children.append(Child(f"worker-{i}", "worker", [*cli, "worker"], popen={"env": env}))
            self.children.append(Child("web", "web", [*cli, "web"], popen={"env": env}))
            for child in self.children:
                self._spawn(child)
            self._watch(config)
        finally:
            (config.var_dir / RUN_FILE).unlink(missing_ok=True)
            self._stop_all()
        say("stopped")
        return 0

    def _start_redis(self, config: Config) -> str:
        port = REDIS_PORT if port_problem("127.0.0.1", REDIS_PORT) is None else embedded_redis.free_port()
        data = config.var_dir / "redis"
        self.redis = Child("redis", "redis", [], popen={"data_dir": data, "port": port})
        if not self._spawn(self.redis):
            raise SystemExit(f"kabootar run: Redis did not start; see {data}/redis.log")
        url = f"redis://127.0.0.1:{port}/0"
        say(f"Redis at {url} (data in {data}/, append-only file fsynced on every write)")
        return url

    def _spawn(self, child: Child) -> bool:
        """Start a child in its own process group; False (and a retry later) if it cannot start."""
        common: dict[str, Any] = {
            "process_group": 0,
            "preexec_fn": _die_with_parent,
            "stdin": subprocess.DEVNULL,  # a background process group reading the terminal would stop
        }
        child.started = time.monotonic()
        child.restart_at = None
        try:
            if child.kind == "redis":
                child.proc = embedded_redis.start(durable=True, **child.popen, **common)
            else:
                child.proc = subprocess.Popen(child.argv, **child.popen, **common)
        except (OSError, RuntimeError) as e:
            child.failures += 1
            child.restart_at = child.started + min(MAX_BACKOFF, 2.0**child.failures)
            say(f"could not start {child.name}: {e}")
            return False
        return True

    def _watch(self, config: Config) -> None:
        announced = False
        while not self.stopping:
            now = time.monotonic()
            for child in ([self.redis] if self.redis else []) + self.children:
                self._check(child, now)
            if not announced and _answers(config):
                self._announce(config)
                announced = True
            time.sleep(0.2)

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at and not self.stopping:
                say(f"restarting {child.name}")
                self._spawn(child)
            return
        assert child.proc is not None
        code = child.proc.poll()
        if code is None:
            return
        _kill_group(child.proc, signal.SIGKILL)  # leftovers, e.g. gunicorn's or rq's own children
        lived = now - child.started
        child.failures = child.failures + 1 if lived < STEADY_SECONDS else 0
        delay = min(MAX_BACKOFF, 2.0 ** (child.failures - 1)) if child.failures else 0.0
        how = f"signal {-code}" if code < 0 else f"status {code}"
        say(f"{child.name} exited ({how}) after {lived:.1f}s; restarting it in {delay:.0f}s")
        child.restart_at = now + delay

    def _announce(self, config: Config) -> None:
        base = _local_url(config)
        lines = [f"Kabootar is running. Open the feed at {base}/"]
        if config.simulator:
            lines.append(f"  dev phone (text the gateway as any number): {base}/dev/phone")
        lines.append(f"  operator console: {base}/ops")
        lines.append(f"  health: {base}/healthz, {base}/readyz")
        for provider in config.sms_providers:
            if config.simulated(provider):
                lines.append(f"  {provider}: the built-in simulator (SIMULATOR=1)")
            elif provider == "twilio":
                lines.append(f"  twilio: set the number's webhook to {config.public_url}/twilio/sms")
            else:
                lines.append(f"  android: set the app's webhooks to {config.public_url}/android/webhook")
        lines.append("Press Ctrl-C to stop.")
        say("\n".join(lines))

    def _stop_all(self) -> None:
        self.stopping = True
        webs = [c for c in self.children if c.kind == "web"]
        workers = [c for c in self.children if c.kind == "worker"]
        for group in (webs, workers, [self.redis] if self.redis else []):
            alive = [c for c in group if c.proc is not None and c.proc.poll() is None]
            if alive:
                say(f"stopping {', '.join(c.name for c in alive)}")
            for c in alive:
                assert c.proc is not None
                c.proc.send_signal(signal.SIGTERM)  # gunicorn and rq: graceful; redis: flush and exit
            for c in alive:
                assert c.proc is not None
                self._reap(c.proc, STOP_TIMEOUT[c.kind], c.name)

    def _reap(self, proc: subprocess.Popen[bytes], timeout: float, name: str) -> None:
        """Wait for a stopping child; kill it (and its process group) if it takes too long."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not self.hurry:
            time.sleep(0.05)
        if proc.poll() is None:
            if not self.hurry:
                say(f"{name} did not stop within {timeout:.0f}s; killing it")
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
        _kill_group(proc, signal.SIGKILL)  # anything it left behind in its group


@dataclass(frozen=True)
class RunningRedis:
    """The Redis of the `kabootar run` that uses a var/ directory, as it recorded it."""

    url: str  # REDIS_URL, or with Sentinels "sentinel://host:port,…/master" (for messages)
    embedded: bool  # started by `kabootar run`, its data in var/redis
    sentinels: str = ""  # REDIS_SENTINELS, when the Sentinels find it
    sentinel_master: str = ""  # REDIS_SENTINEL_MASTER


def _record_redis(config: Config, embedded: bool) -> None:
    """Write var/run.json, readable by this user alone (REDIS_URL may hold a password; the
    REDIS_PASSWORD of Sentinels' Redis is not written: `kabootar ops` reads it from its own
    environment)."""
    found: dict[str, object] = {"redis_url": connect.describe(config), "embedded": embedded}
    if config.redis_sentinels:
        env = config.as_env()
        found |= {
            "redis_sentinels": env["REDIS_SENTINELS"],
            "redis_sentinel_master": env["REDIS_SENTINEL_MASTER"],
        }
    path = config.var_dir / RUN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(found, f)


def running_redis(var_dir: Path) -> RunningRedis | None:
    """The Redis the `kabootar run` using `var_dir` recorded, or None when none runs there.

    A run killed with SIGKILL leaves its record behind: check that the Redis answers."""
    try:
        found = json.loads((var_dir / RUN_FILE).read_text())
        return RunningRedis(
            str(found["redis_url"]),
            bool(found["embedded"]),
            str(found.get("redis_sentinels", "")),
            str(found.get("redis_sentinel_master", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _local_url(config: Config) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return f"http://{f'[{host}]' if ':' in host else host}:{config.port}"


def _answers(config: Config) -> bool:
    try:
        with urllib.request.urlopen(f"{_local_url(config)}/healthz", timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False
