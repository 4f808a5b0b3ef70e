"""Fixtures over a real redis-server started for the test session (never a fake).

Like flask-rq's tests: one server per session on a free port, FLUSHALL after each test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.providers.twilio.webhooks import SignatureChecker
from gateway.runtime import Runtime
from gateway.store import queues
from gateway.web import create_app
from tests.burst import BurstWorker
from tests.ha import ha_cluster  # noqa: F401  (fixture: a primary, two replicas, three Sentinels)
from tests.live import processes  # noqa: F401  (fixture: real Kabootar processes)
from tests.report import pytest_terminal_summary, report  # noqa: F401  (fault tests' figures)
from workers import context

TEST_PUBLIC_URL = "https://kabootar.test"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = embedded_redis.free_port()
    proc = embedded_redis.start(tmp_path_factory.mktemp("redis"), port, durable=False)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def config(redis_server: str, tmp_path: Path) -> Config:
    return Config.from_env(
        {
            "PUBLIC_URL": TEST_PUBLIC_URL,
            "REDIS_URL": redis_server,
            "SECRET_KEY": "test-secret-key",
            "SMS_PROVIDERS": "twilio,android",  # both simulated: every route of either is served
            "SIMULATOR": "1",
        },
        var_dir=tmp_path / "var",
    )


def real_twilio(config: Config) -> Config:
    """`config` with real Twilio credentials as its only provider: nothing is simulated."""
    return replace(
        config,
        sms_providers=("twilio",),
        android_simulated=False,
        twilio_simulated=False,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="real",
    )


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    rt = Runtime.from_config(config)
    # Before too: a test of real processes on the session's Redis (no `runtime` of its own)
    # may leave data behind, which must not count in the next test.
    rt.redis.flushall()
    context.use(rt)
    yield rt
    rt.redis.flushall()


@pytest.fixture
def redis(runtime: Runtime) -> Redis:
    return runtime.redis


@pytest.fixture
def app(config: Config, runtime: Runtime) -> Flask:
    return create_app(config, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Twilio:
    """Sends webhooks the way Twilio does: form-encoded and signed."""

    def __init__(self, client: FlaskClient, config: Config) -> None:
        self.client = client
        self.signer = SignatureChecker(config.twilio_auth_token, config.public_url)
        self.count = 0

    def form(self, sender: str = "+989121234567", body: str = "hello", **extra: str) -> dict[str, str]:
        self.count += 1
        form = {
            "MessageSid": f"SM{self.count:032x}",
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        form.update(extra)
        return form

    def post(self, form: Mapping[str, str], path: str = "/twilio/sms", signature: str | None = None):
        sig = self.signer.sign(path, form) if signature is None else signature
        return self.client.post(path, data=dict(form), headers={"X-Twilio-Signature": sig})

    def text(self, sender: str = "+989121234567", body: str = "hello", **extra: str):
        return self.post(self.form(sender, body, **extra))


@pytest.fixture
def twilio(client: FlaskClient, config: Config) -> Twilio:
    return Twilio(client, config)


def run_workers(runtime: Runtime, queue_names: Sequence[str] = queues.ALL) -> None:
    """Run queued jobs with a real RQ worker in burst mode, as rq's own tests do."""
    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    rq_queues = queues.make(rq_redis)
    worker = BurstWorker([rq_queues[name] for name in queue_names], connection=rq_redis)
    worker.work(burst=True, logging_level="WARNING")


@pytest.fixture
def drain(runtime: Runtime):
    """Call to let the workers turn everything received so far into posts and commands.

    Only the inbound queue: sending SMS needs a live simulator, which the tests that check
    what phones receive start themselves (tests/phones.py, tests/simulated.py).
    """
    return lambda: run_workers(runtime, [queues.INBOUND])


@pytest.fixture
def login_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock of the console's login waits (gateway/ops/backoff.py), standing still until
    a test moves it: `login_clock[0] += 60`."""
    from gateway.ops import backoff

    now = [1_800_000_000.0]
    monkeypatch.setattr(backoff, "clock", lambda: now[0])
    return now
