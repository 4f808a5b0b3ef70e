"""A live Kabootar web app on a real port, with the Twilio simulator in it, for outbound tests.

The adapter talks to the simulator over real HTTP through `twilio.rest.Client`, and the
simulator's status callbacks come back over real HTTP to /twilio/status, as with Twilio.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from werkzeug.serving import WSGIRequestHandler, make_server

from gateway.box import embedded_redis
from gateway.config import Config
from gateway.microblog import subscribers
from gateway.outbox import outbound, sender
from gateway.providers import registry
from gateway.providers.records import Sender
from gateway.providers.twilio.api import TwilioSender
from gateway.runtime import Runtime
from gateway.store import queues
from gateway.web import create_app
from workers import context


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Live:
    url: str
    config: Config
    runtime: Runtime
    app: Flask
    rq_redis: Redis
    sender: TwilioSender
    _numbers: dict[int, str] = field(default_factory=dict)

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    @property
    def queues(self) -> dict[str, Queue]:
        return queues.make(self.rq_redis)

    def subscriber(self, number: str) -> int:
        """Register a texter with this number; returns the subscriber id."""
        vault = self.runtime.vault
        sub = subscribers.register(self.redis, vault.lookup_key(number), vault.encrypt(number))
        self._numbers[sub.id] = number
        return sub.id

    def queue(
        self, messages: list[tuple[int, str]], intent: str = "test", kind: str = "answer", **options: bool
    ) -> int:
        return outbound.queue(self.redis, self.queues, messages, intent=intent, kind=kind, **options)

    def send_all(self, budget: float = 30.0) -> None:
        """Send until nothing waits (retries included), in this process."""
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            out = sender.drain(self.runtime, self.senders, queues.LANES, budget=deadline - time.monotonic())
            if not out.more and out.next_due is None:
                return
        raise AssertionError("outbound SMS still waiting after the budget")

    def control(self, action: str, provider: str = "twilio", **form: Any) -> None:
        """Tell a provider's simulator to misbehave (or stop): its /control/<action> hook,
        from a browser at the dev phone (the only one the hooks obey)."""
        with self.app.test_client() as client:
            form |= dev_session(client)
            assert client.post(f"/dev/{provider}/control/{action}", data=form).status_code == 200

    @property
    def senders(self) -> dict[str, Sender]:
        """A sender for every provider that is on (Twilio's is this Live's own)."""
        return {**registry.senders(self.config), "twilio": self.sender}


def dev_session(client: FlaskClient) -> dict[str, str]:
    """Open /dev/phone in this client, as a developer's browser does; returns the form field
    (its CSRF token) that the dev phone's sends and the simulators' control hooks need."""
    page = client.get("/dev/phone").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the dev phone has no CSRF token"
    return {"csrf_token": found.group(1)}


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@contextlib.contextmanager
def running(redis_server: str, tmp_path: Path, **env: str) -> Iterator[Live]:
    """Serve a gateway (settings from `env`, unpaced by default) until the block ends.

    Test modules wrap it in a `live` fixture of their own.
    """
    port = embedded_redis.free_port()
    url = f"http://127.0.0.1:{port}"
    base = {
        "PUBLIC_URL": url,
        "REDIS_URL": redis_server,
        "SECRET_KEY": "test-secret-key",
        "SMS_MPS": "0",
        "SIMULATOR": "1",
    }
    config = Config.from_env({**base, **env}, var_dir=tmp_path / "var")
    runtime = Runtime.from_config(config)
    context.use(runtime)
    app = create_app(config, {"TESTING": True})
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = Live(url, config, runtime, app, Redis.from_url(redis_server), TwilioSender(config))
    try:
        yield live
    finally:
        # Let the simulator's status callbacks in flight land before the server goes.
        for t in threading.enumerate():
            if t.name == "sim-reports":
                t.join(timeout=2)
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        live.sender.close()
        runtime.redis.flushall()
        live.rq_redis.close()
