"""Issue 13, item 15 and its simulator fixes: the simulators and /dev/ pages are on only when
asked for (SIMULATOR=1), a half-configured provider does not start, the simulators' secrets
are this installation's own, their control hooks obey only the dev phone's browser; the
simulated Twilio answers STOP, START and HELP as Twilio does; the dev phone refuses what is
no phone number."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from gateway.config import SIMULATOR_ACCOUNT_SID, SIMULATOR_FROM, Config, ConfigError
from gateway.providers.android.simulator import phones as android_phones
from gateway.providers.simulated import handsets
from gateway.providers.twilio.simulator import keywords
from gateway.store import keys
from gateway.web import create_app
from tests.conftest import TEST_PUBLIC_URL, Twilio
from tests.live import CLI, SETTINGS
from tests.simulated import dev_session
from tests.test_layout import ROOT
from tests.test_ops import csrf_of

PHONE = "+14155550123"
MESSAGES = f"/dev/twilio/2010-04-01/Accounts/{SIMULATOR_ACCOUNT_SID}/Messages.json"
# What the simulators' secrets were, in this source, before they became each installation's own.
OLD_TWILIO_TOKEN = "kabootar-simulator-token"
OLD_ANDROID_SIGNING_KEY = "kabootar-simulator-signing-key"
REAL_TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "a-real-token"}


def kabootar(argv: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    """Run a command as an operator's shell would, with only `settings` of Kabootar's."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS} | settings
    # The Procfile's `kabootar` and `python` are this virtualenv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:gateway.box.gunicorn_conf"]
PROCFILE = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
# Every way to start the web app or a worker: the CLI under each web server, the
# Procfile's two lines (as a shell runs them, with this virtualenv's commands first on
# the PATH), and gunicorn started with its settings module, as a Procfile of old did.
STARTS = {
    "kabootar web": [*CLI, "web"],
    "kabootar worker": [*CLI, "worker"],
    "procfile web": ["sh", "-c", PROCFILE["web"]],
    "procfile worker": ["sh", "-c", PROCFILE["worker"]],
    "gunicorn web": [*GUNICORN, "gateway.web:create_app()"],
}  # fmt: skip


# ---------------------------------------------------------------- starting up


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": REAL_TWILIO["TWILIO_ACCOUNT_SID"]}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": REAL_TWILIO["TWILIO_ACCOUNT_SID"], "SIMULATOR": "1"}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": "a-real-token"}, "TWILIO_ACCOUNT_SID"),
        (REAL_TWILIO, "TWILIO_FROM"),
        ({"SMS_PROVIDERS": "android", "ANDROID_GATEWAY_PASSWORD": "pw"}, "ANDROID_GATEWAY_URL"),
    ],
    ids=[
        "sid-without-token",
        "sid-without-token-simulator-on",
        "token-without-sid",
        "no-sender",
        "phone-no-url",
    ],
)
def test_abuse_15_a_half_configured_provider_does_not_start_and_names_what_is_missing(
    tmp_path: Path, settings: dict[str, str], named: str
):
    for command in ("kabootar web", "kabootar worker", "procfile web", "gunicorn web"):
        result = kabootar(
            STARTS[command],
            KABOOTAR_VAR_DIR=str(tmp_path / "var"),
            REDIS_URL="redis://127.0.0.1:1/0",
            **settings,
        )
        assert result.returncode == 2, (command, result.stderr)
        assert named in result.stderr and "Traceback" not in result.stderr, command
    ran = kabootar([*CLI, "run"], KABOOTAR_VAR_DIR=str(tmp_path / "var"), **settings)
    assert ran.returncode == 2 and named in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


@pytest.mark.parametrize("command", list(STARTS))
def test_abuse_15_without_credentials_or_simulator_the_app_and_workers_refuse_to_start(
    tmp_path: Path, command: str
):
    result = kabootar(
        STARTS[command], KABOOTAR_VAR_DIR=str(tmp_path / "var"), REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert result.returncode == 2, result.stderr
    assert "TWILIO_ACCOUNT_SID" in result.stderr and "SIMULATOR=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_abuse_15_kabootar_run_leaves_an_explicit_simulator_0_alone(tmp_path: Path):
    ran = kabootar([*CLI, "run"], KABOOTAR_VAR_DIR=str(tmp_path / "var"), SIMULATOR="0")
    assert ran.returncode == 2 and "SIMULATOR=1" in ran.stderr
    assert not (tmp_path / "var" / "redis").exists()


def test_abuse_15_without_simulator_1_there_is_no_dev_route_and_no_simulator(
    redis_server: str, tmp_path: Path
):
    base = {"REDIS_URL": redis_server, "SECRET_KEY": "k", "PUBLIC_URL": TEST_PUBLIC_URL}
    with pytest.raises(ConfigError, match="SIMULATOR=1"):  # no credentials: it used to simulate silently
        create_app(Config.from_env(base, var_dir=tmp_path), {"TESTING": True})
    real = Config.from_env({**base, **REAL_TWILIO, "TWILIO_FROM": "+15551230000"}, var_dir=tmp_path)
    client = create_app(real, {"TESTING": True}).test_client()
    for path in (
        "/dev/phone",
        "/dev/phone/send",
        "/dev/twilio/control/reset",
        MESSAGES,
        "/dev/android/message",
    ):
        assert client.post(path).status_code == 404 and client.get(path).status_code == 404, path


# ---------------------------------------------------------------- secrets of one's own


def test_abuse_15_webhooks_forged_with_the_old_constant_secrets_are_refused(
    client: FlaskClient, twilio: Twilio, redis: Redis, config: Config
):
    forged = Twilio(client, replace(config, twilio_auth_token=OLD_TWILIO_TOKEN))
    assert forged.text(body="forged as Twilio").status_code == 403
    old_key = replace(config, android_webhook_signing_key=OLD_ANDROID_SIGNING_KEY)
    path, body, headers = android_phones.text_webhook(old_key, PHONE, "forged as the phone")
    assert client.post(path, data=body, headers=headers).status_code == 403
    old_auth = (SIMULATOR_ACCOUNT_SID, OLD_TWILIO_TOKEN)
    form = {"To": PHONE, "From": SIMULATOR_FROM, "Body": "spam on the developer's account"}
    assert client.post(MESSAGES, data=form, auth=old_auth).status_code == 401
    assert redis.llen(keys.INBOX) == 0
    assert twilio.text(body="signed as this installation's Twilio").status_code == 200


def test_abuse_15_each_installation_has_its_own_simulator_secrets_and_children_get_them(config: Config):
    other = Config.from_env({**config.as_env(), "SECRET_KEY": "another-installation"})
    secrets_of = lambda c: (c.twilio_auth_token, c.android_gateway_password, c.android_webhook_signing_key)  # noqa: E731
    assert all(secrets_of(config)) and all(secrets_of(other))
    assert set(secrets_of(config)).isdisjoint(secrets_of(other))
    source = "".join(p.read_text() for p in Path("gateway").rglob("*.py"))
    assert not [s for s in secrets_of(config) if s in source]
    child = Config.from_env(config.as_env())  # what `kabootar run` gives the web app and workers
    assert config.as_env()["SIMULATOR"] == "1"
    assert (child.twilio_simulated, child.android_simulated) == (True, True)
    assert secrets_of(child) == secrets_of(config)


# ---------------------------------------------------------------- the control hooks


def test_abuse_15_only_the_dev_phones_browser_may_drive_the_simulators(app: Flask, config: Config):
    stranger = app.test_client()
    outage = {"seconds": "60", "statuses": "503"}
    assert stranger.get("/dev/twilio/control/outage").status_code == 405  # POST only
    assert stranger.post("/dev/twilio/control/outage", data=outage).status_code == 400  # no CSRF token
    # A valid token of the stranger's own (from the login page), but they never opened /dev/phone.
    token = csrf_of(stranger.get("/ops/login").get_data(as_text=True))
    for path in ("/dev/twilio/control/outage", "/dev/android/control/offline", "/dev/phone/send"):
        refused = stranger.post(path, data={**outage, "csrf_token": token, "number": PHONE, "body": "x"})
        assert refused.status_code == 403, path
        assert "Open /dev/phone" in refused.get_data(as_text=True)
    developer = app.test_client()
    dev = dev_session(developer)
    assert (
        stranger.post("/dev/twilio/control/outage", data={**outage, **dev}).status_code == 400
    )  # not theirs
    auth = (config.twilio_account_sid, config.twilio_auth_token)
    form = {"To": PHONE, "From": SIMULATOR_FROM, "Body": "still up"}
    assert developer.post(MESSAGES, data=form, auth=auth).status_code == 201  # none of that took
    assert developer.post("/dev/twilio/control/outage", data={**outage, **dev}).status_code == 200
    assert developer.post(MESSAGES, data=form, auth=auth).status_code == 503


# ---------------------------------------------------------------- what the dev phone shows


def text_from_dev_phone(client: FlaskClient, body: str, number: str = PHONE, channel: str = "twilio"):
    form = {"number": number, "body": body, "channel": channel, **dev_session(client)}
    return client.post("/dev/phone/send", data=form)


def received(redis: Redis, number: str = PHONE) -> list[str]:
    return [m["body"] for m in handsets.inbox_for(redis, number)]


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Unsubscribe ", "CANCEL", "END", "QUIT", "STOPALL", "REVOKE", "optout"]
)
def test_abuse_15_stop_to_twilio_brings_twilios_opt_out_confirmation_to_the_dev_phone(
    client: FlaskClient, redis: Redis, config: Config, word: str
):
    assert text_from_dev_phone(client, word).status_code == 303
    assert received(redis) == [keywords.OPTED_OUT]
    page = client.get(f"/dev/phone?number={urllib.parse.quote(PHONE)}").get_data(as_text=True)
    assert "You have successfully been unsubscribed" in page
    # As Twilio: nothing more reaches the phone (21610) until it texts START.
    auth = (config.twilio_account_sid, config.twilio_auth_token)
    form = {"To": PHONE, "From": SIMULATOR_FROM, "Body": "are you there?"}
    refused = client.post(MESSAGES, data=form, auth=auth)
    assert (refused.status_code, refused.get_json()["code"]) == (400, 21610)
    text_from_dev_phone(client, "HELP")  # no answer from Twilio to a phone that opted out
    text_from_dev_phone(client, "START")
    assert received(redis) == [keywords.OPTED_OUT, keywords.OPTED_IN]
    assert client.post(MESSAGES, data=form, auth=auth).status_code == 201
    text_from_dev_phone(client, "help")
    assert received(redis)[-2:] == ["are you there?", keywords.HELPED]


def test_abuse_15_only_a_keyword_alone_and_only_twilio_answer_it(client: FlaskClient, redis: Redis):
    text_from_dev_phone(client, "STOP please")
    text_from_dev_phone(client, "STOP", number="+14155550124", channel="android")  # a SIM: no carrier reply
    assert received(redis) == [] and received(redis, "+14155550124") == []
    assert redis.llen(keys.INBOX) == 2  # both still reached the gateway


@pytest.mark.parametrize("typed", ["not-a-number", "+1", "abc123", "+98 912 ab 4567"])
def test_abuse_15_the_dev_phone_refuses_what_is_no_phone_number(
    client: FlaskClient, redis: Redis, typed: str
):
    sent = text_from_dev_phone(client, "hello", number=typed)
    assert sent.status_code == 400
    assert "not a phone number" in sent.get_data(as_text=True)
    assert redis.llen(keys.INBOX) == 0
    assert client.get(f"/dev/phone?number={urllib.parse.quote(typed)}").status_code == 400
    answer = client.get(f"/dev/phone/messages?number={urllib.parse.quote(typed)}")
    assert answer.status_code == 400 and "not a phone number" in answer.get_json()["error"]
    # A number written without "+" (a "+" in a link arrives as a space) is still one.
    assert text_from_dev_phone(client, "hello", number=" 14155550123").status_code == 303
