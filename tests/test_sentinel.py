"""Kabootar on a Redis watched by Sentinel (issue 14, items 1 and 2), with real processes:
a primary, two replicas and three Sentinels (tests/ha.py), killed and cut off as an outage
would. What is checked is what a texter or an operator would notice: texts keep being
taken after the primary dies, without restarting anything, and a text is never answered
200 unless a replica has it too.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError
from gateway.runtime import Runtime
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import TEST_PUBLIC_URL, Twilio
from tests.ha import Cluster
from tests.live import CLI, Gateway, Processes, clean_env, start_gateway, web_settings

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

FAILOVER_BUDGET = 30.0  # seconds from SIGKILL of the primary to writes landing on the new one


def sentinel_config(cluster: Cluster, tmp_path: Path, **extra: str) -> Config:
    return Config.from_env(
        {
            **cluster.env(),
            "PUBLIC_URL": TEST_PUBLIC_URL,
            "SECRET_KEY": "test-secret-key",
            "SMS_PROVIDERS": "twilio",
            "SIMULATOR": "1",
            **extra,
        },
        var_dir=tmp_path / "var",
    )


def test_a_runtime_writes_to_the_promoted_replica_after_the_primary_is_killed(
    ha_cluster: Cluster, tmp_path: Path
) -> None:
    runtime = Runtime.from_config(sentinel_config(ha_cluster, tmp_path))
    runtime.redis.set("before", "1")
    first = ha_cluster.primary()
    assert first.client().get("before") == b"1"

    ha_cluster.kill_primary()
    killed_at = time.monotonic()
    while True:  # the same Runtime, no restart: each try either fails or lands on the new primary
        try:
            runtime.redis.set("after", "1")
            break
        except Exception:
            assert time.monotonic() - killed_at < FAILOVER_BUDGET, "no write reached a new primary"
            time.sleep(0.2)
    recovered = time.monotonic() - killed_at
    ha_cluster.wait_for_failover()
    second = ha_cluster.primary()
    assert second.address != first.address
    assert second.client().get("after") == b"1"
    assert second.client().get("before") == b"1"  # replicated before the kill, so kept
    print(f"writes resumed {recovered:.1f} s after SIGKILL of the primary")


def test_a_text_is_refused_with_503_while_no_replica_can_confirm_it(
    ha_cluster: Cluster, tmp_path: Path
) -> None:
    config = sentinel_config(ha_cluster, tmp_path, REDIS_WAIT_TIMEOUT_MS="200")
    assert config.redis_wait_replicas == 1  # the default with Sentinels
    twilio = Twilio(create_app(config, {"TESTING": True}).test_client(), config)
    assert twilio.text(body="with replicas").status_code == 200

    ha_cluster.stop_replicas()
    refused = twilio.form(body="no replica has this yet")
    for _ in range(3):  # a provider retrying: the first copy is on the primary, still unconfirmed
        assert twilio.post(refused).status_code == 503

    ha_cluster.start_replicas()
    assert twilio.post(refused).status_code == 200  # now replicated: the retry is acknowledged


def test_web_and_worker_processes_found_through_sentinels_turn_a_text_into_a_post(
    ha_cluster: Cluster, processes: Processes, tmp_path: Path
) -> None:
    gateway = start_gateway("", processes, tmp_path / "var", **ha_cluster.env())
    assert gateway.text("+15005550101", "news from the square") == 200
    feed = gateway.wait_for_posts(1)
    assert feed[0]["body"] == "news from the square"


def test_kabootar_run_with_sentinels_starts_no_redis_and_ops_finds_the_primary(
    ha_cluster: Cluster, processes: Processes, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    settings = web_settings("", var, "run-secret-key", WORKERS="1", WEB_CONCURRENCY="1", **ha_cluster.env())
    run = processes.start("run", [*CLI, "run"], clean_env(**settings))
    gateway = Gateway(Config.from_env(settings), processes)
    gateway.wait_ready("run")
    assert gateway.text("+15005550102", "through the Sentinels' primary") == 200
    assert gateway.wait_for_posts(1)[0]["body"] == "through the Sentinels' primary"
    assert not (var / "redis").exists() and "Redis at redis://" not in processes.output("run")

    # An operator's shell beside `make run`, with none of its settings: run.json leads to the primary.
    added = subprocess.run(
        [*CLI, "ops", "add-user", "bob", "--password-stdin"],
        env=clean_env(KABOOTAR_VAR_DIR=str(var)),
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert ha_cluster.primary().client().hexists(keys.OPS_USERS, "bob")
    run.terminate()
    assert run.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS='-1': at least 0"),
        ({"REDIS_WAIT_REPLICAS": "one"}, "REDIS_WAIT_REPLICAS='one': a whole number"),
        ({"REDIS_WAIT_TIMEOUT_MS": "0"}, "REDIS_WAIT_TIMEOUT_MS='0': at least 1"),
    ],
    ids=["negative", "not-a-number", "no-time"],
)
def test_a_wait_setting_it_cannot_use_is_named(settings: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        Config.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", **settings})


def test_replicas_are_awaited_by_default_only_with_sentinels() -> None:
    assert Config.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"}).redis_wait_replicas == 0
    assert Config.from_env({"REDIS_SENTINELS": "127.0.0.1:26379"}).redis_wait_replicas == 1
