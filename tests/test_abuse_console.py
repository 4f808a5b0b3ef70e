"""Issue 13, the console's items: no lockout anyone can set off (13), sessions that end
when they should (14), and `kabootar ops` finding the running instance's Redis (18)."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from requests.adapters import HTTPAdapter

from gateway.box import cli, embedded_redis
from gateway.box.supervisor import REDIS_PORT
from gateway.config import Config
from gateway.ops import accounts, backoff
from gateway.store import keys
from gateway.web import create_app
from tests.live import CLI, Processes, clean_env, start_gateway, web_settings
from tests.test_ops import PASSWORD, csrf_of, log_in

SCRAPER_TOKEN = "scraper-token-for-the-tests-0123"
ATTACK_SECONDS = 12.0


# ---------------------------------------------------------------- 13: no lockout


class FromAddress(HTTPAdapter):
    """Sends from one loopback address (127.0.0.0/8 all reaches the server), so a test on
    one machine has several clients that the server tells apart by address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def browser_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def form_login(browser: requests.Session, base: str, password: str, name: str = "ana") -> requests.Response:
    token = csrf_of(browser.get(f"{base}/ops/login", timeout=5).text)
    form = {"csrf_token": token, "name": name, "password": password}
    return browser.post(f"{base}/ops/login", data=form, allow_redirects=False, timeout=5)


def patiently(attempt: Callable[[], requests.Response], wanted: int) -> float:
    """Try, and while told to wait (429, Retry-After), wait and try again; the seconds it took."""
    started = time.monotonic()
    while (response := attempt()).status_code == 429:
        assert time.monotonic() - started < 30, "still refused after 30 s"
        time.sleep(float(response.headers["Retry-After"]))
    assert response.status_code == wanted, (response.status_code, response.text[:300])
    return time.monotonic() - started


@pytest.mark.e2e
def test_abuse_13_a_guesser_at_one_address_never_keeps_the_operator_or_the_scraper_out(
    redis_server: str, redis: Redis, processes: Processes, tmp_path: Path, report
):
    # `redis` before `processes`: the processes stop before the data is flushed.
    accounts.add_user(redis, "ana", PASSWORD)
    gateway = start_gateway(redis_server, processes, tmp_path / "var", METRICS_TOKEN=SCRAPER_TOKEN)
    base = gateway.base
    stop_at = time.monotonic() + ATTACK_SECONDS
    guesses: Counter[int] = Counter()
    scrapes: Counter[int] = Counter()

    def guess() -> None:  # wrong passwords as fast as the server answers, by form and by Basic auth
        attacker = browser_at("127.0.0.2")
        for _ in range(5000):
            if time.monotonic() > stop_at:
                return
            guesses[form_login(attacker, base, "hunter2 hunter2").status_code] += 1
            health = attacker.get(f"{base}/ops/api/health", auth=("ana", "letmein123"), timeout=5)
            guesses[health.status_code] += 1

    def scrape() -> None:
        scraper = browser_at("127.0.0.4")
        while time.monotonic() < stop_at:
            token = {"Authorization": f"Bearer {SCRAPER_TOKEN}"}
            scrapes[scraper.get(f"{base}/metrics", headers=token, timeout=5).status_code] += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=guess), threading.Thread(target=scrape)]
    for thread in threads:
        thread.start()
    waits = []
    try:
        while time.monotonic() < stop_at - 3:  # the operator comes and goes during the attack
            time.sleep(1)
            operator = browser_at("127.0.0.3")
            waits.append(patiently(partial(form_login, operator, base, PASSWORD), 303))
            assert operator.get(f"{base}/ops", allow_redirects=False, timeout=5).status_code == 200
            script = browser_at("127.0.0.3")
            health = partial(script.get, f"{base}/ops/api/health", auth=("ana", PASSWORD), timeout=5)
            waits.append(patiently(health, 200))
    finally:
        for thread in threads:
            thread.join()
    report("injected", f"{sum(guesses.values())} wrong logins for ana from 127.0.0.2 in {ATTACK_SECONDS:g} s")
    report("counted", f"guesser: {dict(guesses)}; scraper: {dict(scrapes)}")
    report("counted", f"ana from 127.0.0.3 got in {len(waits)} times, the longest after {max(waits):.1f} s")
    assert max(waits) < 5 and len(waits) >= 4
    assert list(scrapes) == [200] and scrapes[200] >= ATTACK_SECONDS
    assert guesses[429] > 100 and set(guesses) == {401, 429}
    # Doubling waits: a few free typos, then one check after 1, 2, 4 and 8 s at most.
    assert guesses[401] <= backoff.PAIR_FREE + 5
    assert not [k for k in redis.scan_iter() if "127.0.0." in k]  # no address in Redis


def test_abuse_13_behind_a_trusted_proxy_basic_auth_guesses_slow_only_the_guesser(
    config: Config, runtime, redis: Redis, login_clock: list[float]
):
    app = create_app(replace(config, trusted_proxies=1), {"TESTING": True})
    accounts.add_user(redis, "ana", PASSWORD)

    def via_proxy(forwarded: str, password: str):
        headers = {"X-Forwarded-For": forwarded}
        return app.test_client().get(
            "/ops/api/health",
            headers=headers,
            auth=("ana", password),
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )

    statuses = Counter(via_proxy("203.0.113.9", "wrong password").status_code for _ in range(20))
    assert statuses == {401: backoff.PAIR_FREE + 1, 429: 20 - backoff.PAIR_FREE - 1}
    refused = via_proxy("203.0.113.9", PASSWORD)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert via_proxy("198.51.100.4", PASSWORD).status_code == 200  # ana, through the same proxy
    assert not [k for k in redis.scan_iter() if "203.0.113" in k or "10.0.0.2" in k]


def test_abuse_13_guesses_sent_all_at_once_get_no_more_checks_than_one_by_one(
    app: Flask, redis: Redis, login_clock: list[float]
):
    accounts.add_user(redis, "ana", PASSWORD)
    statuses: Counter[int] = Counter()
    start = threading.Barrier(16)

    def guess() -> None:
        client = app.test_client()
        start.wait()
        statuses[client.get("/ops/api/health", auth=("ana", "wrong password")).status_code] += 1

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == {401: backoff.PAIR_FREE + 1, 429: 16 - backoff.PAIR_FREE - 1}


def test_abuse_13_guessers_at_many_addresses_never_make_the_operator_wait_in_a_browser_she_used(
    app: Flask, redis: Redis, login_clock: list[float]
):
    accounts.add_user(redis, "ana", PASSWORD)
    accounts.add_user(redis, "bob", PASSWORD)
    at_home = {"REMOTE_ADDR": "198.51.100.7"}
    laptop, bobs = app.test_client(), app.test_client()
    assert log_in(laptop, environ_base=at_home).status_code == 303  # the laptop is now known
    assert log_in(bobs, "bob").status_code == 303

    # A botnet: one wrong password from each of 40 addresses, so the account's own wait runs.
    guesses = Counter(
        log_in(
            app.test_client(), password="wrong guess", environ_base={"REMOTE_ADDR": f"203.0.113.{n}"}
        ).status_code
        for n in range(40)
    )
    assert guesses[429] > 30  # the account's wait slows them all
    new_browser = app.test_client()
    assert (
        log_in(new_browser, environ_base={"REMOTE_ADDR": "192.0.2.50"}).status_code == 429
    )  # so, a stranger

    laptop.delete_cookie("session")  # her session ended: she logs in again
    assert log_in(laptop, environ_base=at_home).status_code == 303  # but ana's laptop: at once
    laptop.delete_cookie("session")
    assert log_in(laptop, environ_base={"REMOTE_ADDR": "192.0.2.77"}).status_code == 303  # from anywhere
    # Bob's device cookie, or a made-up one, is not ana's.
    borrowed = bobs.get_cookie("ops_device", path="/ops/login")
    assert borrowed is not None
    for cookie in (borrowed.value, borrowed.value[:-2] + "xx"):
        thief = app.test_client()
        thief.set_cookie("ops_device", cookie, path="/ops/login")
        assert log_in(thief, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 429
    # A guesser holding ana's device cookie still meets the doubling waits, on that device.
    stolen = app.test_client()
    stolen.set_cookie(
        "ops_device", laptop.get_cookie("ops_device", path="/ops/login").value, path="/ops/login"
    )
    tries = Counter(log_in(stolen, password="wrong guess").status_code for _ in range(10))
    assert tries == {401: backoff.PAIR_FREE + 1, 429: 10 - backoff.PAIR_FREE - 1}


def test_abuse_13_metrics_token_must_be_whole_and_long(config: Config, runtime):
    scraper = create_app(replace(config, metrics_token=SCRAPER_TOKEN), {"TESTING": True}).test_client()
    for wrong in (SCRAPER_TOKEN[:-1], SCRAPER_TOKEN + "x", SCRAPER_TOKEN.upper(), ""):
        assert scraper.get("/metrics", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    assert scraper.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"}).status_code == 200
    settings = clean_env(REDIS_URL="redis://127.0.0.1:1/0", METRICS_TOKEN="short")
    result = subprocess.run([*CLI, "web"], env=settings, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "METRICS_TOKEN" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- 14: sessions end


def copy_of(client: FlaskClient, app: Flask) -> FlaskClient:
    """Another browser holding a copy of `client`'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def end_by_logout(client: FlaskClient, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = csrf_of(client.get("/ops").get_data(as_text=True))
    assert client.post("/ops/logout", data={"csrf_token": token}).status_code == 303


def end_by_new_password(client: FlaskClient, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new password\n"))
    argv = ["ops", "set-password", "ana", "--password-stdin", "--redis-url", redis_url]
    assert cli.main(argv) == 0


def end_by_remove_user(client: FlaskClient, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["ops", "remove-user", "ana", "--redis-url", redis_url]) == 0


@pytest.mark.parametrize(
    "end_session",
    [end_by_logout, end_by_new_password, end_by_remove_user],
    ids=["logout", "set-password", "remove-user"],
)
def test_abuse_14_a_copied_session_cookie_stops_working_when_the_session_ends(
    app: Flask, redis: Redis, redis_server: str, monkeypatch: pytest.MonkeyPatch, end_session
):
    accounts.add_user(redis, "ana", PASSWORD)
    ana = app.test_client()
    assert log_in(ana).status_code == 303
    thief = copy_of(ana, app)
    assert thief.get("/ops").status_code == 200  # the copy works while the session lives

    end_session(ana, redis_server, monkeypatch)
    assert thief.get("/ops").status_code == 303
    assert thief.get("/ops/api/health").status_code == 401
    assert thief.get("/metrics").status_code == 401


def test_abuse_14_a_new_password_ends_every_session_of_that_operator_only(
    app: Flask, redis: Redis, redis_server: str, monkeypatch: pytest.MonkeyPatch
):
    accounts.add_user(redis, "ana", PASSWORD)
    accounts.add_user(redis, "bob", PASSWORD)
    laptop, phone, bob = app.test_client(), app.test_client(), app.test_client()
    for client, name in ((laptop, "ana"), (phone, "ana"), (bob, "bob")):
        assert log_in(client, name).status_code == 303
    end_by_new_password(laptop, redis_server, monkeypatch)
    assert laptop.get("/ops").status_code == 303 and phone.get("/ops").status_code == 303
    assert bob.get("/ops").status_code == 200
    assert log_in(laptop).status_code == 401  # the old password is gone
    assert log_in(laptop, password="a brand new password").status_code == 303


@pytest.mark.parametrize(
    "change", [end_by_new_password, end_by_remove_user], ids=["set-password", "remove-user"]
)
def test_abuse_14_a_login_with_the_old_password_checked_as_it_changes_gets_no_session(
    app: Flask, redis: Redis, redis_server: str, monkeypatch: pytest.MonkeyPatch, change
):
    """The old password is being checked (a slow hash) when the new one is set: the check
    passes, but the session it would start must not outlive the change."""
    accounts.add_user(redis, "ana", PASSWORD)
    thief = app.test_client()
    real_check = accounts.check_password_hash

    def check_while_it_changes(stored: str, password: str) -> bool:
        matched = real_check(stored, password)
        monkeypatch.setattr(accounts, "check_password_hash", real_check)  # the change's own check
        change(thief, redis_server, monkeypatch)
        return matched

    monkeypatch.setattr(accounts, "check_password_hash", check_while_it_changes)
    assert log_in(thief).status_code == 401
    assert thief.get("/ops").status_code == 303  # not in
    assert list(redis.scan_iter(keys.ops_session("*"))) == []  # no session was left behind


# ---------------------------------------------------------------- 18: kabootar ops finds Redis


def kabootar(*args: str, stdin: str = "", **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=clean_env(**settings), input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.mark.e2e
def test_abuse_18_ops_add_user_finds_the_redis_of_make_run_on_another_port(
    processes: Processes, tmp_path: Path
):
    var = tmp_path / "var"
    with socket.socket() as taken:  # 6390 busy (as a second checkout's Redis would keep it)
        try:
            taken.bind(("127.0.0.1", REDIS_PORT))
            taken.listen()
        except OSError:
            pass  # already taken by something else: as good
        settings = web_settings("", var, "", WORKERS="1")
        del settings["SECRET_KEY"]
        run = processes.start("run", [*CLI, "run"], clean_env(**settings))
        base = f"http://127.0.0.1:{settings['PORT']}"
        deadline = time.monotonic() + 60
        while "Kabootar is running" not in processes.output("run"):
            assert run.poll() is None and time.monotonic() < deadline, processes.output("run")
            time.sleep(0.2)
        redis_url = re.search(r"Redis at (redis://\S+)", processes.output("run"))
        assert redis_url and f":{REDIS_PORT}/" not in redis_url.group(1)

        added = kabootar("ops", "add-user", "bob", "--password-stdin", stdin=PASSWORD + "\n", **settings)
        assert added.returncode == 0, added.stderr
        assert form_login(requests.Session(), base, PASSWORD, name="bob").status_code == 303

        run.terminate()
        run.wait(timeout=60)
    assert not (var / "run.json").exists()
    orphan = kabootar("ops", "add-user", "carol", "--password-stdin", stdin=PASSWORD + "\n", **settings)
    assert orphan.returncode == 2
    assert f"no `kabootar run` is running from {var}/" in orphan.stderr and "Traceback" not in orphan.stderr
    assert "make run" in orphan.stderr and "--redis-url" in orphan.stderr


def test_abuse_18_ops_commands_take_a_redis_url_and_say_when_nothing_answers(
    redis_server: str, redis: Redis, tmp_path: Path
):
    var = str(tmp_path / "var")
    added = kabootar(
        "ops", "add-user", "dana", "--password-stdin", "--redis-url", redis_server,
        stdin=PASSWORD + "\n", KABOOTAR_VAR_DIR=var,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert accounts.exists(redis, "dana")

    dead = f"redis://127.0.0.1:{embedded_redis.free_port()}/0"
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run.json").write_text(
        f'{{"redis_url": "{dead}", "embedded": true}}'
    )  # a killed run's
    stale = kabootar("ops", "remove-user", "dana", KABOOTAR_VAR_DIR=var)
    assert stale.returncode == 2 and "does not answer" in stale.stderr and dead in stale.stderr
    assert "Traceback" not in stale.stderr
