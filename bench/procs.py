"""The processes a benchmark starts, and the promise that every one of them is stopped.

Each process leads its own session (so a Ctrl-C in the terminal reaches only the bench,
which then stops them in order) and is told by Linux to exit if the bench itself dies.
`Fleet.stop_all` SIGTERMs each session, waits, then SIGKILLs whatever is left of it
(gunicorn's and RQ's own children included).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1
_TICKS = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In a new child, before exec: SIGTERM it when the bench dies, however it dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def session_members(sid: int) -> list[int]:
    """Live processes of a session: a process we started and everything it spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and int(stat[3]) == sid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the given live processes have used so far."""
    total = 0
    for pid in pids:
        stat = _stat(pid)
        if stat:
            total += int(stat[11]) + int(stat[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


@dataclass
class Proc:
    role: str  # "web", "worker", "redis", "peer-web", …: what its CPU time is counted as
    name: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Fleet:
    """Every process one scenario started, with its output in `logs/<name>.log`."""

    logs: Path
    procs: list[Proc] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)  # removed once everything has stopped

    def start(
        self, role: str, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> Proc:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(role, name, popen)
        self.procs.append(proc)
        return proc

    def adopt(self, role: str, name: str, popen: subprocess.Popen[bytes]) -> Proc:
        """Track a process started elsewhere (in its own session), e.g. redis-server."""
        proc = Proc(role, name, popen)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        """Raise if a process of this scenario has died (its log says why)."""
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None:
                raise RuntimeError(f"{proc.name} exited with {code}; see {self.logs / proc.name}.log")

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds used so far by each role's processes and their children."""
        roles: dict[str, float] = {}
        for proc in self.procs:
            roles[proc.role] = roles.get(proc.role, 0.0) + cpu_seconds(session_members(proc.pid))
        return roles

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop everything: the apps first (SIGTERM, then SIGKILL after `timeout`), Redis last."""
        apps = [p for p in reversed(self.procs) if p.role != "redis"]
        self._stop([*apps], timeout)
        self._stop([p for p in self.procs if p.role == "redis"], timeout)
        self.procs.clear()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)
        self.scratch.clear()

    @staticmethod
    def _stop(procs: list[Proc], timeout: float) -> None:
        for proc in procs:
            if proc.popen.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            for pid in session_members(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _signal_group(proc.pid, signal.SIGKILL)
            proc.popen.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_http(url: str, fleet: Fleet, timeout: float = 30.0) -> None:
    """Wait until `url` answers at all (any HTTP status), failing early if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered: a 404 or 405 from a live server is fine
        except OSError:
            pass
        fleet.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.1)
