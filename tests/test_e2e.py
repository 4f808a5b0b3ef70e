"""End to end through real processes: `kabootar web` (Granian), `kabootar worker`, `kabootar run` and Redis.

Texts go in as signed webhooks over HTTP and come out of the feed API; the logs the
processes wrote and every key and value in Redis are then searched for the numbers used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from gateway.box import embedded_redis
from gateway.config import Config, simulator_by_default
from tests.live import CLI, Gateway, clean_env, is_zombie, processes_in_session, start_gateway
from tests.privacy import leaks, redis_dump_url

pytestmark = pytest.mark.e2e

TEHRAN, SHIRAZ = "+989121234567", "+989177654321"


def test_texts_become_posts_once_through_the_web_server_worker_and_redis(
    redis_server, redis, processes, tmp_path
):
    gateway = start_gateway(redis_server, processes, tmp_path / "var")

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
    output = processes.output()
    # The web server's own log is there (Granian's; gunicorn's under WEB_SERVER=gunicorn).
    assert "Spawning worker" in output or "Booting worker" in output
    assert leaks(output, [TEHRAN, SHIRAZ]) == []
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
        if argv[-3:] == [b"gateway.box.cli", b"worker", b""] and ppid == supervisor.pid:
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
    gateway = Gateway(Config.from_env(simulator_by_default(settings)), processes)  # as `kabootar run`
    bodies: list[str] = []

    for run, text in enumerate(["posted in the first run", "posted in the second run"]):
        supervisor = processes.start(f"run-{run}", [*CLI, "run"], env)
        gateway.wait_ready(f"run-{run}")
        assert len(processes_in_session(supervisor.pid)) >= 5  # us, redis, the web server + 1, a worker

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
        assert [pid for pid in children if not is_zombie(pid)] == []
        assert processes_in_session(supervisor.pid) == []
        processes.procs.remove(supervisor)

    output = processes.output()
    assert output.count("kabootar run: stopped") == 2
    assert "did not stop" not in output  # every child stopped when asked, none was killed
    assert leaks(output, [TEHRAN]) == []


def test_kabootar_run_on_a_fresh_clone_with_secret_key_set_serves_and_posts(processes, tmp_path):
    """With SECRET_KEY set no key file is written, so nothing else has made var/ yet."""
    var = tmp_path / "fresh" / "var"
    settings = {"PORT": str(embedded_redis.free_port()), "WORKERS": "1", "KABOOTAR_VAR_DIR": str(var)}
    settings["SECRET_KEY"] = "a-key-the-operator-chose-" + uuid.uuid4().hex
    gateway = Gateway(Config.from_env(simulator_by_default(settings)), processes)  # as `kabootar run`
    supervisor = processes.start("run", [*CLI, "run"], clean_env(WEB_CONCURRENCY="1", **settings))
    gateway.wait_ready("run")

    assert gateway.text(TEHRAN, "posted with the operator's key") == 200
    assert [p["body"] for p in gateway.wait_for_posts(1)] == ["posted with the operator's key"]
    assert not (var / "secret_key").exists()  # the operator's key is used, none is generated
    os.killpg(supervisor.pid, signal.SIGINT)
    assert supervisor.wait(timeout=60) == 0
