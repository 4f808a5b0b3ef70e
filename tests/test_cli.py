"""The `kabootar` command says clearly why it cannot start, and stops there."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gateway.box import embedded_redis
from tests.live import CLI, SETTINGS


def kabootar(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS} | settings
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", ["web", "worker"])
def test_web_and_worker_without_redis_url_point_to_kabootar_run(command: str, tmp_path: Path):
    result = kabootar(command, KABOOTAR_VAR_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "REDIS_URL is not set" in result.stderr and "kabootar run" in result.stderr


def test_run_on_a_taken_port_says_so_and_starts_nothing(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = kabootar("run", PORT=str(port), KABOOTAR_VAR_DIR=str(tmp_path / "var"))
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.stdout
    assert f"PORT={port + 1} make run" in result.stdout
    assert not (tmp_path / "var" / "redis").exists()


def test_a_second_run_on_the_same_data_is_refused(tmp_path: Path):
    var = tmp_path / "var"
    var.mkdir()
    with open(var / "run.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `kabootar run` holds it
        result = kabootar("run", PORT=str(embedded_redis.free_port()), KABOOTAR_VAR_DIR=str(var))
    assert result.returncode == 1
    assert "another `kabootar run` is already using" in result.stdout


def test_help_lists_the_commands():
    result = kabootar("--help")
    assert result.returncode == 0
    for command in ("run", "web", "worker"):
        assert f"    {command} " in result.stdout


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"SMS_PROVIDERS": "android", "ANDROID_GATEWAY_URL": "http://192.168.1.20:8080"},
            "ANDROID_WEBHOOK_SIGNING_KEY",
        ),
        ({"SMS_PROVIDERS": "twilio,pigeon"}, "SMS_PROVIDERS"),
        ({"SMS_MPS": "fast"}, "SMS_MPS"),
        ({"SMS_FAILOVER_AFTER": "5m"}, "SMS_FAILOVER_AFTER"),
        ({"WORKERS": "two"}, "WORKERS"),
        ({"REDIS_SENTINELS": "sentinel-1,sentinel-2:26379"}, "REDIS_SENTINELS"),
        ({"MAX_MENTION_SMS": "-1"}, "MAX_MENTION_SMS"),
        ({"WEB_SERVER": "uwsgi"}, "WEB_SERVER"),
    ],
    ids=[
        "phone-without-its-key",
        "unknown-provider",
        "rate-not-a-number",
        "seconds-with-a-unit",
        "workers-in-words",
        "sentinel-without-port",
        "negative-limit",
        "unknown-web-server",
    ],
)
def test_a_setting_it_cannot_start_with_is_named_without_a_traceback(tmp_path: Path, settings, named: str):
    for command in ("run", "web", "worker"):
        result = kabootar(
            command, KABOOTAR_VAR_DIR=str(tmp_path / "var"), REDIS_URL="redis://127.0.0.1:1/0", **settings
        )
        assert result.returncode == 2, (command, result.stderr)
        assert named in result.stderr and "Traceback" not in result.stderr
