"""A rolling restart (`kabootar restart --rolling`, SIGUSR1 to `kabootar run`): every web and
worker process replaced one at a time, from the code and settings on disk, while texts
keep arriving.

- Web processes behind HAProxy (`make ha`): one is taken out of the proxy (`maint`: no new
  requests go to it), its requests in flight finish, it gets SIGTERM (gunicorn's graceful
  stop), a new one starts, and once its /healthz answers it is put back and the proxy's own
  checks pass; only then the next one. The others serve meanwhile.
- One web process without a proxy (`make run`): SIGHUP, gunicorn's graceful reload. The
  master keeps its listening socket, starts new workers (which import the app anew) and
  stops the old ones once their requests are answered, so no connection is refused. (The
  master itself, with gunicorn's settings, is not replaced: stop and start `make run` to
  change those.)
- Workers: a new one starts, then the old one gets SIGTERM, RQ's warm shutdown: it finishes
  the job it is running and takes no new one (a job outlasting the stop timeout is killed
  and taken up again by recovery, as for any dead worker).
"""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.box.topology import Child

if TYPE_CHECKING:
    from gateway.box.supervisor import Supervisor

READY_TIMEOUT = 60.0  # for a new web process to answer /healthz
DRAIN_TIMEOUT = 15.0  # for the requests in flight in a web process taken out of the proxy
PROXY_UP_TIMEOUT = 15.0  # for the proxy's health checks to pass again (2 in a row, 1 s apart)


class RollingError(Exception):
    """Why a rolling restart stopped before its end."""


def roll(supervisor: Supervisor) -> tuple[bool, str]:
    """Replace every web process, then every worker, one at a time: whether all were, and what was
    done (or why not all)."""
    replaced: list[str] = []
    try:
        for web in supervisor.topology.of_kind("web"):
            if supervisor.topology.proxy is not None:
                _replace_behind_proxy(supervisor, web)
            else:
                _reload(supervisor, web)
            replaced.append(web.name)
        for worker in supervisor.topology.of_kind("worker"):
            _replace_worker(supervisor, worker)
            replaced.append(worker.name)
    except (RollingError, OSError, RuntimeError) as e:
        return False, f"stopped after replacing {', '.join(replaced) or 'nothing'}: {e}"
    return True, f"replaced {', '.join(replaced)}"


def _replace_behind_proxy(supervisor: Supervisor, web: Child) -> None:
    proxy = supervisor.topology.proxy
    assert proxy is not None
    proxy.set_state(web.name, "maint")
    supervisor.wait(lambda: _in_flight(supervisor, web) == 0, DRAIN_TIMEOUT, skip=web)
    supervisor.stop(web, wait=False)
    supervisor.stop(web)
    ready = supervisor.spawn(web) and supervisor.wait(lambda: _ready(web.port), READY_TIMEOUT, skip=web)
    proxy.set_state(web.name, "ready")  # even if not ready: the health checks keep it out then
    if not ready:
        raise RollingError(f"{web.name} did not answer /healthz within {READY_TIMEOUT:.0f}s")
    if not supervisor.wait(lambda: proxy.servers().get(web.name, {}).get("status") == "UP", PROXY_UP_TIMEOUT):
        raise RollingError(f"HAProxy did not see {web.name} up within {PROXY_UP_TIMEOUT:.0f}s")


def _in_flight(supervisor: Supervisor, web: Child) -> int:
    assert supervisor.topology.proxy is not None
    return int(supervisor.topology.proxy.servers().get(web.name, {}).get("scur") or 0)


def _reload(supervisor: Supervisor, web: Child) -> None:
    assert web.proc is not None
    master = web.proc.pid
    old = set(_children_of(master))
    web.proc.send_signal(signal.SIGHUP)

    def reloaded() -> bool:
        now = set(_children_of(master))
        return bool(now) and not now & old and _ready(web.port)

    if not supervisor.wait(reloaded, READY_TIMEOUT):
        raise RollingError(f"{web.name}'s new gunicorn workers did not take over within {READY_TIMEOUT:.0f}s")


def _replace_worker(supervisor: Supervisor, old: Child) -> None:
    """Start the new worker first, so the queues never have one fewer taker than usual for long."""
    new = Child(old.name, old.kind, old.argv, old.popen, old.port)
    if not supervisor.spawn(new):
        raise RollingError(f"could not start a new {old.name}")
    children = supervisor.topology.children
    children[children.index(old)] = new  # from here on the old one is no longer watched
    supervisor.stop(old, wait=False)
    supervisor.stop(old)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (gunicorn's workers, for its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found
