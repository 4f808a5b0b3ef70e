"""Every setting Kabootar reads, in one place (the README's configuration table).

Nothing else in the code base reads the environment: the web app, the workers and
the `kabootar run` supervisor all build a `Config` with `Config.from_env()`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Credentials the built-in Twilio simulator accepts; used when none are configured.
SIMULATOR_ACCOUNT_SID = "AC" + "0" * 31 + "1"
SIMULATOR_AUTH_TOKEN = "kabootar-simulator-token"
SIMULATOR_FROM = "+15005550006"


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"  # where `make run` serves
    port: int = 5000
    public_url: str = ""  # the URL Twilio calls; webhook signatures are checked against it
    redis_url: str | None = None  # None: `kabootar run` starts the embedded Redis under var_dir
    twilio_account_sid: str = SIMULATOR_ACCOUNT_SID
    twilio_auth_token: str = SIMULATOR_AUTH_TOKEN  # also signs and verifies webhooks
    twilio_from: str | None = None  # sender number, or …
    twilio_messaging_service_sid: str | None = None  # … a Messaging Service
    twilio_api_base_url: str = ""  # Twilio REST base; the simulator's when no credentials
    simulator: bool = True  # no Twilio credentials: serve /dev/phone and the simulator
    secret_key: str = ""  # sessions, and the root of the keys that protect phone numbers
    sms_mps: float = 1.0  # message segments per second the sender may use
    workers: int = 2  # worker processes `make run` starts
    sms_max_segments: int = 2  # longest fan-out SMS, in segments
    sender_posts_per_minute: int = 20  # posts one number may make per minute
    metrics_public: bool = False  # serve /metrics without login
    # Proxies in front of the web app that append the client to X-Forwarded-For; 0: none,
    # the connection's own address is the client (rate limits and login lockouts count by it).
    # Set it only if the app cannot be reached but through them: else anyone can forge it.
    trusted_proxies: int = 0
    var_dir: Path = field(default_factory=lambda: Path("var"))  # dev data: Redis files, secret key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read the environment (or `env`), fill the derived defaults, apply `overrides`."""
        env = os.environ if env is None else env
        var_dir = Path(env.get("KABOOTAR_VAR_DIR", "var"))
        host = env.get("HOST", "127.0.0.1")
        port = int(env.get("PORT", "5000"))
        sid = env.get("TWILIO_ACCOUNT_SID", "")
        token = env.get("TWILIO_AUTH_TOKEN", "")
        simulator = not (sid and token)
        public_url = env.get("PUBLIC_URL") or f"http://{host}:{port}"
        cfg = cls(
            host=host,
            port=port,
            public_url=public_url.rstrip("/"),
            redis_url=env.get("REDIS_URL") or None,
            twilio_account_sid=sid or SIMULATOR_ACCOUNT_SID,
            twilio_auth_token=token or SIMULATOR_AUTH_TOKEN,
            twilio_from=env.get("TWILIO_FROM") or (SIMULATOR_FROM if simulator else None),
            twilio_messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            twilio_api_base_url=(
                env.get("TWILIO_API_BASE_URL")
                or (f"{public_url.rstrip('/')}/dev/twilio" if simulator else "https://api.twilio.com")
            ),
            simulator=simulator,
            secret_key=env.get("SECRET_KEY") or "",
            sms_mps=float(env.get("SMS_MPS", "1")),
            workers=int(env.get("WORKERS", "2")),
            sms_max_segments=int(env.get("SMS_MAX_SEGMENTS", "2")),
            sender_posts_per_minute=int(env.get("SENDER_POSTS_PER_MINUTE", "20")),
            metrics_public=env.get("METRICS_PUBLIC") == "1",
            trusted_proxies=int(env.get("TRUSTED_PROXIES", "0")),
            var_dir=var_dir,
        )
        return replace(cfg, **overrides) if overrides else cfg

    def with_secret_key(self) -> Config:
        """Return a config whose secret key is set: SECRET_KEY, or one kept in var_dir for dev.

        The key protects every stored phone number, so a generated one is written once
        and reused: losing it would make the stored numbers unreadable.
        """
        if self.secret_key:
            return self
        path = self.var_dir / "secret_key"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return replace(self, secret_key=path.read_text().strip())

    def as_env(self) -> dict[str, str]:
        """The environment that makes child processes build this same config."""
        env = {
            "HOST": self.host,
            "PORT": str(self.port),
            "PUBLIC_URL": self.public_url,
            "TWILIO_API_BASE_URL": self.twilio_api_base_url,
            "SECRET_KEY": self.secret_key,
            "SMS_MPS": str(self.sms_mps),
            "WORKERS": str(self.workers),
            "SMS_MAX_SEGMENTS": str(self.sms_max_segments),
            "SENDER_POSTS_PER_MINUTE": str(self.sender_posts_per_minute),
            "KABOOTAR_VAR_DIR": str(self.var_dir),
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if not self.simulator:
            env["TWILIO_ACCOUNT_SID"] = self.twilio_account_sid
            env["TWILIO_AUTH_TOKEN"] = self.twilio_auth_token
        if self.twilio_from and not self.simulator:
            env["TWILIO_FROM"] = self.twilio_from
        if self.twilio_messaging_service_sid:
            env["TWILIO_MESSAGING_SERVICE_SID"] = self.twilio_messaging_service_sid
        if self.metrics_public:
            env["METRICS_PUBLIC"] = "1"
        if self.trusted_proxies:
            env["TRUSTED_PROXIES"] = str(self.trusted_proxies)
        return env
