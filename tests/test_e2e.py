"""End to end through real processes: gunicorn, `kabootar worker`, `kabootar run` and Redis.

Texts go in as signed webhooks over HTTP and come out of the feed API; the logs the
processes wrote and every key and value in Redis are then searched for the numbers used.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway import embedded_redis
from gateway.config import Config
from gateway.twilio import SignatureChecker
from tests.privacy import leaks, redis_dump_url

pytestmark = pytest.mark.e2e

TEHRAN, SHIRAZ = "+989121234567", "+989177654321"
CLI = [sys.executable, "-m", "gateway.cli"]
# Settings a developer's shell might carry; the processes under test get only ours.
SETTINGS = [
    "HOST", "PORT", "PUBLIC_URL", "REDIS_URL", "SECRET_KEY", "WORKERS", "KABOOTAR_VAR_DIR",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL", "WEB_CONCURRENCY",
]  # fmt: skip


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def session_of(pid: int) -> int | None:
    """The session id of a process (field 6 of /proc/<pid>/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])


def processes_in_session(sid: int) -> list[int]:
    """Every live process in a session: a supervisor started with its own and all it spawned."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if session_of(pid) == sid and not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@dataclass
class Processes:
    """Child processes, each leading its own session, with their output in files."""

    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def output(self, name: str = "*") -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob(f"{name}.log")))

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM each process, then SIGKILL whatever is left of their sessions."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            for pid in processes_in_session(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    yield procs
    procs.stop()


class Gateway:
    """An HTTP client for one running Kabootar, sending texts the way Twilio does."""

    def __init__(self, config: Config, procs: Processes) -> None:
        self.base = f"http://127.0.0.1:{config.port}"
        self.signer = SignatureChecker(config.twilio_auth_token, config.public_url)
        self.procs = procs

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def text(self, sender: str, body: str, sid: str | None = None) -> int:
        form = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        request = urllib.request.Request(
            self.base + "/twilio/sms",
            data=urllib.parse.urlencode(form).encode(),
            headers={"X-Twilio-Signature": self.signer.sign("/twilio/sms", form)},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)

    def wait_ready(self, log: str = "*", timeout: float = 60) -> None:
        """Wait for /readyz; fail at once if a process (or a child of `kabootar run`) died."""
        deadline = time.monotonic() + timeout
        while self.get_quietly("/readyz") != 200:
            output = self.procs.output(log)
            for proc in self.procs.procs:
                assert proc.poll() is None, f"{proc.args!r} exited:\n{output[-3000:]}"
            assert not re.search(r"kabootar run: \S+ exited", output), output[-3000:]
            assert time.monotonic() < deadline, f"not ready in {timeout}s:\n{output[-3000:]}"
            time.sleep(0.2)

    def get_quietly(self, path: str) -> int | None:
        try:
            return self.get(path)[0]
        except OSError:
            return None

    def feed(self) -> list[dict[str, object]]:
        """The public feed, newest first, as the JSON API serves it."""
        status, body = self.get("/api/v1/posts?limit=100")
        assert status == 200, body
        return list(json.loads(body)["posts"])

    def wait_for_posts(self, count: int, timeout: float = 20) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while len(feed := self.feed()) < count:
            assert time.monotonic() < deadline, (
                f"{len(feed)} posts of {count}:\n{self.procs.output()[-3000:]}"
            )
            time.sleep(0.1)
        return feed


def test_texts_become_posts_once_through_gunicorn_worker_and_redis(redis_server, redis, processes, tmp_path):
    port = embedded_redis.free_port()
    settings = {
        "REDIS_URL": redis_server,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": "e2e-secret-key",
        "KABOOTAR_VAR_DIR": str(tmp_path / "var"),
    }
    env = clean_env(**settings)
    processes.start("web", [*CLI, "web"], env)
    processes.start("worker", [*CLI, "worker"], env)
    gateway = Gateway(Config.from_env(settings), processes)
    gateway.wait_ready()

    repeated = "SM" + uuid.uuid4().hex
    assert gateway.text(TEHRAN, "They cut the internet at noon #انتخابات", sid=repeated) == 200
    assert gateway.text(TEHRAN, "They cut the internet at noon #انتخابات", sid=repeated) == 200
    assert gateway.text(SHIRAZ, "سلام from Shiraz 🌹 @nobody") == 200
    assert gateway.text(TEHRAN, "still here") == 200
    feed = gateway.wait_for_posts(3)

    assert [p["body"] for p in feed] == [
        "still here",
        "سلام from Shiraz 🌹 @nobody",
        "They cut the internet at noon #انتخابات",
    ]
    assert feed[0]["handle"] == feed[2]["handle"] != feed[1]["handle"]
    assert feed[2]["tags"] == ["انتخابات"]

    # Twilio repeating a text after it was posted: still one post, also once a later
    # text has gone through and a moment has passed.
    assert gateway.text(TEHRAN, "They cut the internet at noon #انتخابات", sid=repeated) == 200
    assert gateway.text(SHIRAZ, "last") == 200
    feed = gateway.wait_for_posts(4)
    time.sleep(0.5)
    assert [p["body"] for p in gateway.feed()] == ["last", *[p["body"] for p in feed[1:]]]

    processes.stop()  # so the logs are complete
    assert "Booting worker" in processes.output()
    assert leaks(processes.output(), [TEHRAN, SHIRAZ]) == []
    assert leaks(redis_dump_url(redis_server), [TEHRAN, SHIRAZ]) == []


def worker_pids(supervisor: subprocess.Popen[bytes]) -> list[int]:
    """The `kabootar worker` processes a supervisor started."""
    found = []
    for pid in processes_in_session(supervisor.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if argv[-3:] == [b"gateway.cli", b"worker", b""] and ppid == supervisor.pid:
            found.append(pid)
    return found


def kill_a_worker_and_see_it_replaced(supervisor: subprocess.Popen[bytes], timeout: float = 30) -> None:
    [worker] = worker_pids(supervisor)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while worker_pids(supervisor) in ([], [worker]):
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)


def test_kabootar_run_restarts_a_dead_worker_stops_cleanly_and_keeps_posts(processes, tmp_path):
    port = embedded_redis.free_port()
    settings = {"PORT": str(port), "WORKERS": "1", "KABOOTAR_VAR_DIR": str(tmp_path / "var")}
    env = clean_env(WEB_CONCURRENCY="1", **settings)
    gateway = Gateway(Config.from_env(settings), processes)
    bodies: list[str] = []

    for run, text in enumerate(["posted in the first run", "posted in the second run"]):
        supervisor = processes.start(f"run-{run}", [*CLI, "run"], env)
        gateway.wait_ready(f"run-{run}")
        assert len(processes_in_session(supervisor.pid)) >= 5  # us, redis, gunicorn + 1, a worker

        if run == 0:  # a worker killed outright is replaced, and the new one does the work
            kill_a_worker_and_see_it_replaced(supervisor)
            assert "worker-1 exited (signal 9)" in processes.output(f"run-{run}")

        assert gateway.text(TEHRAN, text) == 200
        bodies.insert(0, text)
        feed = gateway.wait_for_posts(len(bodies))
        assert [p["body"] for p in feed] == bodies
        assert len({p["handle"] for p in feed}) == 1  # the kept secret key finds the same texter

        children = processes_in_session(supervisor.pid)
        os.killpg(supervisor.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert supervisor.wait(timeout=60) == 0
        assert [pid for pid in children if not _is_zombie(pid)] == []
        assert processes_in_session(supervisor.pid) == []
        processes.procs.remove(supervisor)

    output = processes.output()
    assert output.count("kabootar run: stopped") == 2
    assert "did not stop" not in output  # every child stopped when asked, none was killed
    assert leaks(output, [TEHRAN]) == []
