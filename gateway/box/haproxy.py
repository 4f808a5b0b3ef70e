"""The reverse proxy of `make ha`: HAProxy (Debian's) in front of the web processes.

It health-checks each web process's /healthz every second and sends requests only to the
ones that answer (not /readyz: with no worker alive it fails on every web process at once,
and the proxy would refuse texts the web app can still store and acknowledge). A rolling
restart takes a web process out through HAProxy's runtime API (`set server … state
maint`), waits for its requests to finish, replaces it, and puts it back. The runtime API
is a Unix socket in var/, readable by this user alone, and there is
no HTTP stats page: nothing but the frontend listens on the network.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

BACKEND = "web"
INSTALL_HINT = "HAProxy is not installed: `make ha` installs it (Debian: apt-get install haproxy)"


def binary() -> str:
    """The haproxy executable, or RuntimeError saying how to install it."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


def config(bind: str, servers: list[tuple[str, int]], admin_socket: Path) -> str:
    """haproxy.cfg for the frontend on `bind` ("host:port") over `servers` (name, local port).

    Webhooks are safe to retry (a MessageSid is stored once), so a request whose web process
    refused the connection or closed it unanswered is sent to another one (`retry-on`,
    `redispatch`); X-Forwarded-For carries the client (TRUSTED_PROXIES=1 behind it).
    """
    lines = [
        "global",
        "    maxconn 4096",
        f"    stats socket {admin_socket} mode 600 level admin",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",  # gunicorn's own request timeout
        "    timeout http-keep-alive 10s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "frontend kabootar",
        f"    bind {bind}",
        f"    default_backend {BACKEND}",
        f"backend {BACKEND}",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check send meth GET uri /healthz",
        "    default-server inter 1s fall 2 rise 2",
    ]
    lines += [f"    server {name} 127.0.0.1:{port} check" for name, port in servers]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RuntimeApi:
    """HAProxy's runtime API on its admin socket."""

    path: Path

    def ask(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def set_state(self, server: str, state: str) -> None:
        """ "maint": no new requests (those in flight finish); "ready": back in, once its checks pass."""
        answer = self.ask(f"set server {BACKEND}/{server} state {state}").strip()
        if answer:
            raise RuntimeError(f"haproxy: {answer}")

    def servers(self) -> dict[str, dict[str, str]]:
        """Each server's row of `show stat` (status "UP", "DOWN", "MAINT"…; scur: requests in it)."""
        lines = self.ask("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        header = lines[0][2:].split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {r["svname"]: r for r in rows if r.get("pxname") == BACKEND and r["svname"] != "BACKEND"}
