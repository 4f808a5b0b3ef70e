"""`kabootar restart --rolling`: find the `kabootar run` that uses this var/ (var/run.json),
send it SIGUSR1, and wait until it says it has replaced its processes (`rolling.py`).

Only its own user (or root) may signal a process, and var/run.json is that user's alone,
so nobody else can make Kabootar restart; a stale record whose pid now belongs to some
other program is refused rather than signalled.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from gateway.box import runfile


class RestartError(Exception):
    """Why no rolling restart happened, or why it stopped; the message says what to do."""


def rolling(var_dir: Path, timeout: float = 600.0) -> str:
    """Ask for a rolling restart and wait up to `timeout` seconds; what it did."""
    record = runfile.read(var_dir)
    if record is None or not record.supervisor_pid:
        raise RestartError(
            f"no `kabootar run` is running from {var_dir}/: start it with `make run` or `make ha`"
            " (or run this from the directory it runs in)"
        )
    pid = record.supervisor_pid
    if not _is_kabootar_run(pid):
        raise RestartError(
            f"the `kabootar run` that wrote {var_dir}/{runfile.RUN_FILE} (pid {pid}) has stopped"
        )
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as e:
        raise RestartError(f"cannot signal `kabootar run` (pid {pid}): {e.strerror}") from None
    deadline = time.monotonic() + timeout
    while True:
        now = runfile.read(var_dir)
        if now is None or now.supervisor_pid != pid:
            raise RestartError("`kabootar run` stopped before the rolling restart finished")
        if now.restarts > record.restarts:
            if not now.restart_ok:
                raise RestartError(f"rolling restart {now.last_restart}")
            return f"rolling restart: {now.last_restart}"
        if time.monotonic() > deadline:
            raise RestartError(f"the rolling restart has not finished after {timeout:.0f}s; see its output")
        time.sleep(0.5)


def _is_kabootar_run(pid: int) -> bool:
    """Whether `pid` is a live `kabootar run` (not a process that reused a dead one's pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        if not Path("/proc/self").exists():  # no /proc here: trust the record if the pid lives
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False
    except OSError:
        return False
    return b"run" in argv and any(a.endswith((b"kabootar", b"gateway.box.cli")) for a in argv)
