"""`kabootar run`: a small supervisor that runs all of Kabootar on one box.

It starts what `topology` lists — the embedded Redis (unless REDIS_URL or REDIS_SENTINELS names one), WORKERS
workers and the web app; with `--ha` (`make ha`) three Redis servers, three Sentinels, the
workers, two web processes and HAProxy — as child processes, restarts any child that dies
(waiting longer each time one keeps dying), and on Ctrl-C or SIGTERM stops every one of
them in `topology.STOP_ORDER`: the proxy and the web app first (no new texts come in), then
the workers (a warm shutdown: running jobs finish), then Sentinels and Redis; each is
waited for, then whatever is left in its process group is killed.

SIGUSR1 (`kabootar restart --rolling`) replaces the web and worker processes one at a time
(`rolling.py`). While it runs, var/run.json (`runfile`) says which Redis it uses, its pid,
and how many rolling restarts it finished.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only
this supervisor, which can then stop things in that order; and, on Linux, each
child is told to exit if the supervisor itself is killed, so nothing is orphaned.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.box import embedded_redis, replication, rolling, runfile, topology
from gateway.box.topology import REDIS_PORT, Child, Topology, port_problem
from gateway.config import Config
from gateway.store import connect

__all__ = ["REDIS_PORT", "RunningRedis", "Supervisor", "port_problem", "running_redis"]

STOP_TIMEOUT = {"proxy": 10.0, "web": 15.0, "worker": 30.0, "sentinel": 10.0, "replica": 15.0, "redis": 15.0}
STOP_SIGNAL = {"proxy": signal.SIGUSR1}  # HAProxy's soft stop; SIGTERM for the others
MAX_BACKOFF = 30.0
STEADY_SECONDS = 10.0  # a child that ran this long before dying is restarted at once
TICK = 0.2

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In a new child, before exec: ask Linux to SIGTERM it when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def say(message: str) -> None:
    print(f"kabootar run: {message}", flush=True)


class Supervisor:
    """Runs a topology's processes until told to stop; rolls them over on SIGUSR1."""

    def __init__(self, config: Config, ha: bool = False) -> None:
        self.config = config
        self.ha_mode = ha
        self.stopping = False
        self.hurry = False  # a second Ctrl-C: kill what is left instead of waiting
        self.restart_wanted = False
        self.topology = Topology(config, [])
        self.record: runfile.RunRecord | None = None

    @property
    def children(self) -> list[Child]:
        return self.topology.children

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and not self.hurry:
            say("stopping now, without waiting")
            self.hurry = True
        self.stopping = True

    def _on_restart(self, signum: int, frame: FrameType | None) -> None:
        self.restart_wanted = True  # one more request while one runs: one more after it

    def run(self) -> int:
        """Start everything, watch it, stop it on a signal; returns the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGUSR1, self._on_restart)
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
            say(f"Try another port: PORT={config.port + 1} make {'ha' if self.ha_mode else 'run'}")
            return 1
        try:
            self.topology = topology.ha(config) if self.ha_mode else topology.single(config)
            if config.redis_sentinels:
                say(f"Redis: the primary the Sentinels name ({connect.describe(config)})")
            self._start_all()
            embedded = not self.ha_mode and not (config.redis_url or config.redis_sentinels)
            self._write_record(embedded=embedded)
            self._watch()
        finally:
            runfile.remove(config.var_dir)
            self._stop_all()
            if self.topology.scratch is not None:
                shutil.rmtree(self.topology.scratch, ignore_errors=True)
        say("stopped")
        return 0

    def _start_all(self) -> None:
        """Start the children in order; Redis servers must start (each is waited for)."""
        for child in self.children:
            if self.stopping:
                return
            if not self.spawn(child) and child.kind in ("redis", "replica"):
                raise SystemExit(
                    f"kabootar run: {child.name} did not start; see {child.popen['data_dir']}/redis.log"
                )
            if child.kind == "redis":
                what = "Redis" if child.name == "redis" else f"{child.name} (the primary)"
                url = f"redis://127.0.0.1:{child.port}/0"
                data = child.popen["data_dir"]
                say(f"{what} at {url} (data in {data}/, append-only file fsynced on every write)")
            if child.kind == "sentinel" and child is self.topology.of_kind("sentinel")[-1]:
                master = self.topology.config.redis_sentinel_master
                if not replication.wait_until_watched(self.topology.sentinel_ports, master):
                    say("the Sentinels have not all found each other and both replicas yet")

    def _write_record(self, embedded: bool, restarts: int = 0, last: str = "", ok: bool = True) -> None:
        config = self.topology.config
        self.record = runfile.RunRecord(
            redis_url=config.redis_url or connect.describe(config),
            embedded=embedded,
            supervisor_pid=os.getpid(),
            sentinels=[f"{h}:{p}" for h, p in config.redis_sentinels],
            sentinel_master=config.redis_sentinel_master if config.redis_sentinels else "",
            proxy_url=_local_url(config) if self.topology.ha else "",
            restarts=restarts,
            last_restart=last,
            restart_ok=ok,
        )
        runfile.write(config.var_dir, self.record)

    def spawn(self, child: Child) -> bool:
        """Start a child in its own process group; False (and a retry later) if it cannot start."""
        common: dict[str, Any] = {
            "process_group": 0,
            "preexec_fn": _die_with_parent,
            "stdin": subprocess.DEVNULL,  # a background process group reading the terminal would stop
        }
        child.started = time.monotonic()
        child.restart_at = None
        try:
            if child.kind in ("redis", "replica"):
                child.proc = embedded_redis.start(durable=True, **child.popen, **common)
            else:
                child.proc = subprocess.Popen(child.argv, **child.popen, **common)
        except (OSError, RuntimeError) as e:
            child.failures += 1
            child.restart_at = child.started + min(MAX_BACKOFF, 2.0**child.failures)
            say(f"could not start {child.name}: {e}")
            return False
        return True

    def _watch(self) -> None:
        announced = False
        while not self.stopping:
            self.tick()
            if self.restart_wanted:
                self.restart_wanted = False
                self._roll()
            if not announced and _answers(self.topology.config):
                self._announce()
                announced = True
            time.sleep(TICK)

    def tick(self, skip: Child | None = None) -> None:
        """One round of watching: restart what died (all but `skip`, which is being replaced)."""
        now = time.monotonic()
        for child in self.children:
            if child is not skip:
                self._check(child, now)

    def wait(self, done: Callable[[], bool], timeout: float, skip: Child | None = None) -> bool:
        """Watch the others until `done()` or `timeout` seconds; False on timeout or a stop request."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.stopping or time.monotonic() > deadline:
                return False
            self.tick(skip)
            time.sleep(TICK)
        return True

    def _roll(self) -> None:
        started = time.monotonic()
        say("rolling restart: replacing the web and worker processes one at a time")
        ok, outcome = rolling.roll(self)
        summary = f"{outcome} in {time.monotonic() - started:.0f}s"
        say(f"rolling restart: {summary}")
        record = self.record
        assert record is not None
        self._write_record(record.embedded, record.restarts + 1, summary, ok)

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at and not self.stopping:
                say(f"restarting {child.name}")
                self.spawn(child)
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

    def _announce(self) -> None:
        config = self.topology.config
        base = _local_url(config)
        lines = [f"Kabootar is running. Open the feed at {base}/"]
        if config.simulator:
            lines.append(f"  dev phone (text the gateway as any number): {base}/dev/phone")
        lines.append(f"  operator console: {base}/ops")
        lines.append(f"  health: {base}/healthz, {base}/readyz")
        if self.topology.ha:
            lines += self._where_ha_is(base)
        for provider in config.sms_providers:
            if config.simulated(provider):
                lines.append(f"  {provider}: the built-in simulator (SIMULATOR=1)")
            elif provider == "twilio":
                lines.append(f"  twilio: set the number's webhook to {config.public_url}/twilio/sms")
            else:
                lines.append(f"  android: set the app's webhooks to {config.public_url}/android/webhook")
        lines.append(
            "Press Ctrl-C to stop; `kabootar restart --rolling` replaces the web and worker processes."
        )
        say("\n".join(lines))

    def _where_ha_is(self, base: str) -> list[str]:
        config, ha = self.topology.config, self.topology
        webs = ", ".join(f"{w.name} on 127.0.0.1:{w.port}" for w in ha.of_kind("web"))
        redis = ", ".join(f"{c.name} :{c.port}" for c in ha.of_kind("redis", "replica"))
        sentinels = ",".join(f"{host}:{port}" for host, port in config.redis_sentinels)
        return [
            f"  HAProxy at {base}/ in front of {webs} (health check: /healthz)",
            f"  HAProxy's runtime API (this user only): {ha.proxy.path if ha.proxy else ''}",
            f"  Redis: {redis} (the first is the primary; replicas and AOF on each)",
            f"  Sentinels: REDIS_SENTINELS={sentinels} REDIS_SENTINEL_MASTER={config.redis_sentinel_master}",
        ]

    def _stop_all(self) -> None:
        self.stopping = True
        if self.topology.ha:  # before the Sentinels stop: which node the next run starts as primary
            config = self.topology.config
            replication.remember_primary(config.var_dir / "ha", self.topology.nodes, config)
        for kind in topology.STOP_ORDER:
            alive = [
                c
                for c in reversed(self.topology.of_kind(kind))
                if c.proc is not None and c.proc.poll() is None
            ]
            if alive:
                say(f"stopping {', '.join(c.name for c in alive)}")
            for c in alive:
                self.stop(c, wait=False)
            for c in alive:
                self.stop(c)

    def stop(self, child: Child, wait: bool = True) -> None:
        """Ask a child to stop (gunicorn, rq: graceful; redis: flush and exit); with `wait`, wait
        for it (killing it, and its process group, if it takes too long)."""
        assert child.proc is not None
        if not wait:
            if child.proc.poll() is None:
                child.proc.send_signal(STOP_SIGNAL.get(child.kind, signal.SIGTERM))
            return
        self._reap(child.proc, STOP_TIMEOUT[child.kind], child.name)

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


def running_redis(var_dir: Path) -> RunningRedis | None:
    """The Redis the `kabootar run` using `var_dir` recorded, or None when none runs there.

    A run killed with SIGKILL leaves its record behind: check that the Redis answers."""
    record = runfile.read(var_dir)
    if record is None:
        return None
    return RunningRedis(record.redis_url, record.embedded, ",".join(record.sentinels), record.sentinel_master)


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
