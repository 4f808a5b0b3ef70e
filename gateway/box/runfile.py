"""var/run.json: what a running `kabootar run` tells the commands run beside it.

`kabootar ops …` reads which Redis it uses; `kabootar restart --rolling` reads the
supervisor's pid (to signal it) and waits for `restarts` to move on, then prints
`last_restart`. The file is this user's alone (REDIS_URL may hold a password), and is
replaced whole (written aside, then renamed), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunRecord:
    """What one `kabootar run` recorded about itself."""

    redis_url: str  # the primary it started with (`kabootar ops` uses it)
    embedded: bool  # Redis started by `kabootar run`, its data under var/
    supervisor_pid: int = 0  # `kabootar restart --rolling` signals it (SIGUSR1)
    sentinels: list[str] = field(
        default_factory=list
    )  # host:port of each Sentinel (REDIS_SENTINELS, `make ha`)
    sentinel_master: str = ""  # the name they know the primary by (REDIS_SENTINEL_MASTER)
    proxy_url: str = ""  # the reverse proxy in front of the web processes (`make ha`)
    restarts: int = 0  # rolling restarts finished so far
    last_restart: str = ""  # what the last one did, or why it stopped
    restart_ok: bool = True  # whether the last one replaced every process


def write(var_dir: Path, record: RunRecord) -> None:
    """Replace var/run.json with `record`, readable by this user alone."""
    path = var_dir / RUN_FILE
    aside = var_dir / f".{RUN_FILE}.{os.getpid()}"
    aside.unlink(missing_ok=True)
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(record), f)
    os.replace(aside, path)


def read(var_dir: Path) -> RunRecord | None:
    """The record in var/run.json, or None when no `kabootar run` left one (or it is unreadable).

    A run killed with SIGKILL leaves its record behind: callers check that what it names answers."""
    try:
        found = json.loads((var_dir / RUN_FILE).read_text())
        return RunRecord(
            redis_url=str(found["redis_url"]),
            embedded=bool(found["embedded"]),
            supervisor_pid=int(found.get("supervisor_pid", 0)),
            sentinels=[str(s) for s in found.get("sentinels", [])],
            sentinel_master=str(found.get("sentinel_master", "")),
            proxy_url=str(found.get("proxy_url", "")),
            restarts=int(found.get("restarts", 0)),
            last_restart=str(found.get("last_restart", "")),
            restart_ok=bool(found.get("restart_ok", True)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remove(var_dir: Path) -> None:
    (var_dir / RUN_FILE).unlink(missing_ok=True)
