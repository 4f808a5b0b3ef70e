"""`make ha`, `kabootar restart --rolling` and Ctrl-C, with real processes: `kabootar run`
(and `--ha`: three redis-servers, three Sentinels, HAProxy, two web servers, workers) started
as an operator would, texts sent as Twilio sends them, processes replaced and stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis import Redis

from gateway.box import embedded_redis, runfile
from gateway.config import Config, simulator_by_default
from tests.crashes import UNHELD, Answer, posts_by_sid, send_all, texts, wait_until
from tests.live import CLI, Processes, clean_env, is_zombie, processes_in_session
from tests.report import Report

RATE = 100  # texts a second, through the proxy (or gunicorn) while everything is replaced


def start_run(
    processes: Processes, tmp_path: Path, *flags: str, **settings: str
) -> tuple[subprocess.Popen[bytes], Config, dict[str, str]]:
    """`kabootar run [flags]` in its own session on a free port, ready to take texts."""
    settings = {
        "PORT": str(embedded_redis.free_port()),
        "KABOOTAR_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "ha-test-secret-key",
        **UNHELD,
        **settings,
    }
    env = clean_env(**settings)
    run = processes.start("run", [*CLI, "run", *flags], env)
    config = Config.from_env(simulator_by_default(settings))  # as `kabootar run` builds it
    announced = lambda: "Kabootar is running" in processes.output("run")  # noqa: E731
    wait_until(
        lambda: (announced() and _ready(config)) or run.poll() is not None,
        120,
        "kabootar run did not get ready",
        processes,
    )
    assert run.poll() is None, processes.output("run")[-3000:]
    return run, config, env


def _ready(config: Config) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{config.port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def roles(supervisor: int) -> dict[str, set[int]]:
    """The supervisor's web masters, their web workers (gunicorn's or Granian's) and
    Kabootar workers, by pid."""
    found: dict[str, set[int]] = {"web master": set(), "web worker": set(), "worker": set()}
    for pid in processes_in_session(supervisor):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"gunicorn" in argv or b"granian" in argv:
            found["web master" if ppid == supervisor else "web worker"].add(pid)
        elif argv.endswith(b"gateway.box.cli\0worker\0") and ppid == supervisor:
            found["worker"].add(pid)
    return found


def ctrl_c(run: subprocess.Popen[bytes], processes: Processes, within: float = 20) -> float:
    """Press Ctrl-C (SIGINT to the foreground process group) and wait for `kabootar run` to
    stop; then nothing it started may be left. How long it took."""
    started = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)
    assert run.wait(timeout=90) == 0
    took = time.monotonic() - started
    left = [pid for pid in processes_in_session(run.pid) if not is_zombie(pid)]
    assert left == [], processes.output("run")[-3000:]
    assert took < within, f"Ctrl-C took {took:.1f}s:\n{processes.output('run')[-3000:]}"
    assert "did not stop" not in processes.output("run")  # every child stopped when asked
    processes.procs.remove(run)
    return took


@pytest.mark.e2e
def test_ctrl_c_stops_every_process_of_kabootar_run_at_once(
    processes: Processes, tmp_path: Path, report: Report
):
    """An idle RQ worker told to stop used to wait up to 60 s on its pubsub thread, so
    `kabootar run` killed it at 30 s and an outside look found its processes still there."""
    run, _, _ = start_run(processes, tmp_path, WORKERS="4", WEB_CONCURRENCY="1")
    time.sleep(2)  # the workers settle into their idle wait
    took = ctrl_c(run, processes)
    report("Ctrl-C on `kabootar run` (4 workers)", {"seconds to stop everything": round(took, 1)})


def test_restart_without_a_running_kabootar_says_so(tmp_path: Path):
    env = clean_env(KABOOTAR_VAR_DIR=str(tmp_path / "var"))
    result = subprocess.run(
        [*CLI, "restart", "--rolling"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "no `kabootar run` is running" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "var").mkdir()
    runfile.write(
        tmp_path / "var", runfile.RunRecord("redis://127.0.0.1:1/0", True, supervisor_pid=os.getpid())
    )
    result = subprocess.run(
        [*CLI, "restart", "--rolling"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "has stopped" in result.stderr  # this pid is pytest, not `kabootar run`


@pytest.mark.e2e
@pytest.mark.fault
@pytest.mark.parametrize(
    ("flags", "server"),
    [((), "granian"), ((), "gunicorn"), (("--ha",), "granian"), (("--ha",), "gunicorn")],
    ids=["make-run", "make-run-gunicorn", "make-ha", "make-ha-gunicorn"],
)
def test_rolling_restart_during_a_steady_stream_loses_and_refuses_nothing(
    processes: Processes, tmp_path: Path, report: Report, flags: tuple[str, ...], server: str
):
    run, config, env = start_run(processes, tmp_path, *flags, WORKERS="2", WEB_SERVER=server)
    record = runfile.read(config.var_dir)
    assert record is not None and record.supervisor_pid == run.pid
    if flags:  # `make ha`: Sentinels agree on the primary, which has both replicas
        output = processes.output("run")
        assert "HAProxy at" in output and "REDIS_SENTINELS=" in output and "/dev/phone" in output
        assert len(record.sentinels) == 3 and record.proxy_url == f"http://127.0.0.1:{config.port}"
        host, port = record.sentinels[0].split(":")
        sentinel = Redis(host=host, port=int(port), decode_responses=True)
        primary = sentinel.sentinel_get_master_addr_by_name(config.redis_sentinel_master)
        assert f"redis://127.0.0.1:{primary[1]}/0" == record.redis_url
        assert Redis.from_url(record.redis_url).info("replication")["connected_slaves"] == 2
    before = roles(run.pid)

    answers: list[Answer] = []
    done = threading.Event()  # the stream lasts until 3 s after the restart, however long it takes
    stream = texts(int(RATE * 600), 50, "roll")
    sender = threading.Thread(
        target=lambda: answers.extend(send_all(config.with_secret_key(), stream, 8, RATE, until=done))
    )
    sender.start()
    time.sleep(3)
    restart = subprocess.run(
        [*CLI, "restart", "--rolling"], env=env, capture_output=True, text=True, timeout=300
    )
    restarted_while_sending = sender.is_alive()
    time.sleep(3)
    done.set()
    sender.join(timeout=120)
    assert restart.returncode == 0, restart.stderr + processes.output("run")[-3000:]
    assert restarted_while_sending, "the stream ended before the restart did"
    after = roles(run.pid)

    replaced = ["web worker", "worker"] + (["web master"] if flags else [])
    for role in replaced:  # every one replaced (`make run` keeps the server's master: SIGHUP)
        assert before[role] and after[role] and not before[role] & after[role], (role, before, after)
    statuses = [a.status for a in answers]
    count = len(statuses)
    assert count >= 3 * RATE and set(statuses) == {200}, sorted(set(statuses))
    redis = Redis.from_url(record.redis_url, decode_responses=True)
    wait_until(lambda: len(posts_by_sid(redis)) >= count, 120, "not every text was posted", processes)
    posts = posts_by_sid(redis)
    assert set(posts) == {a.sid for a in answers} and set(posts.values()) == {1}  # none lost, none twice
    took = ctrl_c(run, processes)
    report(
        f"rolling restart under {RATE} texts/s ({'make ha' if flags else 'make run'}, {server})",
        {
            "texts sent": count,
            "answered 200": statuses.count(200),
            "posts": sum(posts.values()),
            "duplicates": sum(n - 1 for n in posts.values()),
            "restart": restart.stdout.strip(),
            "seconds to stop on Ctrl-C": round(took, 1),
        },
    )
