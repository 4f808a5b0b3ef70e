"""Real Kabootar processes for end-to-end and browser tests: started, watched, always stopped."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.providers.twilio.webhooks import SignatureChecker

CLI = [sys.executable, "-m", "gateway.box.cli"]
# Settings a developer's shell might carry; the processes under test get only ours.
SETTINGS = [
    "HOST", "PORT", "PUBLIC_URL", "REDIS_URL", "SECRET_KEY", "WORKERS", "KABOOTAR_VAR_DIR",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL", "WEB_CONCURRENCY", "WEB_SERVER", "TRUSTED_PROXIES", "METRICS_PUBLIC",
    "SMS_PROVIDERS", "SMS_MPS", "SMS_FAILOVER", "SMS_FAILOVER_AFTER", "ANDROID_GATEWAY_URL",
    "ANDROID_GATEWAY_USER", "ANDROID_GATEWAY_PASSWORD", "ANDROID_WEBHOOK_SIGNING_KEY", "ANDROID_COUNTRY",
    "MEDIA_ALLOW_HTTP", "SIMULATOR", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_PASSWORD",
    "REDIS_SENTINEL_PASSWORD", "REDIS_WAIT_REPLICAS", "REDIS_WAIT_TIMEOUT_MS",
    "METRICS_TOKEN", "OPS_LOGIN_MAX_WAIT", "MAX_MENTION_SMS", "DM_PER_HOUR", "MAX_FOLLOWS",
    "ALERT_WEBHOOK_URL",
]  # fmt: skip


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def session_of(pid: int) -> int | None:
    """The session id of a process (field 6 of /proc/<pid>/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])


def processes_in_session(sid: int) -> list[int]:
    """Every live process in a session: a supervisor started with its own and all it spawned."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if session_of(pid) == sid and not is_zombie(pid)]


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@dataclass
class Processes:
    """Child processes, each leading its own session, with their output in files."""

    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def output(self, name: str = "*") -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob(f"{name}.log")))

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM each process, then SIGKILL whatever is left of their sessions."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            for pid in processes_in_session(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs)
    yield procs
    procs.stop()


class Gateway:
    """An HTTP client for one running Kabootar, sending texts the way Twilio does."""

    def __init__(self, config: Config, procs: Processes) -> None:
        self.base = f"http://127.0.0.1:{config.port}"
        self.config = config
        self.procs = procs

    @functools.cached_property
    def signer(self) -> SignatureChecker:
        """Signs as the simulated Twilio: its token is made from the secret key, which a
        `kabootar run` without SECRET_KEY writes to var/ only once it has started."""
        config = self.config.with_secret_key()
        return SignatureChecker(config.twilio_auth_token, config.public_url)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def text(self, sender: str, body: str, sid: str | None = None) -> int:
        form = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        request = urllib.request.Request(
            self.base + "/twilio/sms",
            data=urllib.parse.urlencode(form).encode(),
            headers={"X-Twilio-Signature": self.signer.sign("/twilio/sms", form)},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)

    def text_by_phone(self, sender: str, body: str) -> int:
        """Text the gateway from `sender` through the (simulated) Android phone's webhook."""
        from gateway.providers.android.simulator import phones

        path, data, headers = phones.text_webhook(self.config.with_secret_key(), sender, body)
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)

    def wait_ready(self, log: str = "*", timeout: float = 60) -> None:
        """Wait for /readyz; fail at once if a process (or a child of `kabootar run`) died."""
        deadline = time.monotonic() + timeout
        while self.get_quietly("/readyz") != 200:
            output = self.procs.output(log)
            for proc in self.procs.procs:
                assert proc.poll() is None, f"{proc.args!r} exited:\n{output[-3000:]}"
            assert not re.search(r"kabootar run: \S+ exited", output), output[-3000:]
            assert time.monotonic() < deadline, f"not ready in {timeout}s:\n{output[-3000:]}"
            time.sleep(0.2)

    def get_quietly(self, path: str) -> int | None:
        try:
            return self.get(path)[0]
        except OSError:
            return None

    def feed(self) -> list[dict[str, object]]:
        """The public feed, newest first, as the JSON API serves it."""
        status, body = self.get("/api/v1/posts?limit=100")
        assert status == 200, body
        return list(json.loads(body)["posts"])

    def wait_for_posts(self, count: int, timeout: float = 20) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while len(feed := self.feed()) < count:
            assert time.monotonic() < deadline, (
                f"{len(feed)} posts of {count}:\n{self.procs.output()[-3000:]}"
            )
            time.sleep(0.1)
        return feed


def web_settings(redis_url: str, var_dir: Path, secret_key: str, **extra: str) -> dict[str, str]:
    """The settings of a Kabootar on a free local port against `redis_url` ("": none, as with
    Sentinels in `extra`; `extra` win)."""
    from gateway.box import embedded_redis

    port = embedded_redis.free_port()
    return {
        **({"REDIS_URL": redis_url} if redis_url else {}),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": secret_key,
        "KABOOTAR_VAR_DIR": str(var_dir),
        "SIMULATOR": "1",
        **extra,
    }


def start_gateway(redis_server: str, processes: Processes, var_dir: Path, **extra: str) -> Gateway:
    """`kabootar web` and one `kabootar worker` on a free port against `redis_server`, ready."""
    settings = web_settings(redis_server, var_dir, "live-test-secret-key", **extra)
    config = Config.from_env(settings)
    env = clean_env(**{**settings, **config.as_env()})  # SIMULATOR=1 among them
    processes.start("web", [*CLI, "web"], env)
    processes.start("worker", [*CLI, "worker"], env)
    gateway = Gateway(config, processes)
    gateway.wait_ready()
    return gateway
