"""Every setting Kabootar reads, in one place (the README's configuration table).

Nothing else in the code base reads the environment: the web app, the workers and
the `kabootar run` supervisor all build a `Config` with `Config.from_env()`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

# What the built-in simulators (SIMULATOR=1) call their account, sender and user: names,
# not secrets. Their token, password and signing key are this installation's own, made
# from SECRET_KEY (`simulator_secret`): a constant here would let anyone forge webhooks.
SIMULATOR_ACCOUNT_SID = "AC" + "0" * 31 + "1"
SIMULATOR_FROM = "+15005550006"
ANDROID_SIMULATOR_USER = "kabootar"

# Every variable that holds a provider's credentials: with none of them set, `kabootar
# run` turns the simulators on by itself (`make run` on a fresh clone works offline).
TWILIO_CREDENTIALS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
ANDROID_CREDENTIALS = (
    "ANDROID_GATEWAY_URL",
    "ANDROID_GATEWAY_USER",
    "ANDROID_GATEWAY_PASSWORD",
    "ANDROID_WEBHOOK_SIGNING_KEY",
)

PROVIDERS = ("twilio", "android")  # every SMS provider Kabootar can use


class ConfigError(ValueError):
    """A setting Kabootar cannot start with; the message names it and says what it needs."""


_N = TypeVar("_N", int, float)


def _providers(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown or not names:
        raise ConfigError(f"SMS_PROVIDERS={raw!r}: name one or more of {', '.join(PROVIDERS)}")
    return names


WEB_SERVERS = ("granian", "gunicorn")
DEFAULT_WEB_SERVER = "granian"  # why: gateway/box/servers.py


def _web_server(raw: str) -> str:
    name = raw.strip().lower() or DEFAULT_WEB_SERVER
    if name not in WEB_SERVERS:
        raise ConfigError(f"WEB_SERVER={raw!r}: name one of {', '.join(WEB_SERVERS)}")
    return name


def _half_configured(env: Mapping[str, str], names: tuple[str, ...]) -> None:
    """A provider is given all of its credentials or none: one set and another missing is
    a mistake (a typo, a secret that did not reach this process), never a cue to simulate."""
    given = [name for name in names if env.get(name)]
    missing = [name for name in names if not env.get(name)]
    if given and missing:
        raise ConfigError(f"{given[0]} is set, so set {' and '.join(missing)} too (see the README)")


def _twilio_credentials(env: Mapping[str, str]) -> None:
    _half_configured(env, TWILIO_CREDENTIALS)
    sender = env.get("TWILIO_FROM") or env.get("TWILIO_MESSAGING_SERVICE_SID")
    if env.get("TWILIO_ACCOUNT_SID") and not sender:
        raise ConfigError(
            "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set, so set TWILIO_FROM (the sender number)"
            " or TWILIO_MESSAGING_SERVICE_SID too"
        )


def has_credentials(env: Mapping[str, str]) -> bool:
    """Whether any provider's credential is set (then nothing is simulated unless asked)."""
    return any(env.get(name) for name in (*TWILIO_CREDENTIALS, *ANDROID_CREDENTIALS))


def simulator_by_default(env: Mapping[str, str]) -> dict[str, str]:
    """`kabootar run`'s environment: SIMULATOR=1 added when it is unset and no provider has
    any credentials, so `make run` on a fresh clone works offline. Nothing else guesses:
    the web app and workers started any other way need SIMULATOR=1 or credentials."""
    if "SIMULATOR" in env or has_credentials(env):
        return dict(env)
    return {**env, "SIMULATOR": "1"}


def simulator_secret(secret_key: str, purpose: str) -> str:
    """A simulator's credential (`purpose`: what it is for), this installation's own: a
    keyed hash of SECRET_KEY, so every process sharing the key agrees on it, and the key
    cannot be read back from it."""
    message = f"kabootar simulator {purpose}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]


def _rates(raw: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    """SMS_MPS: "10" (every provider), or "twilio:10,android:1" (others: 1)."""
    pairs = [
        (n.strip().lower(), rate) for n, _, rate in (p.partition(":") for p in raw.split(",") if p.strip())
    ]
    if ":" in raw and (unknown := [n for n, _ in pairs if n not in PROVIDERS]):
        raise ConfigError(f"SMS_MPS={raw!r}: {unknown[0]!r} is no provider ({', '.join(PROVIDERS)})")
    try:
        return (1.0, tuple((n, float(rate)) for n, rate in pairs)) if ":" in raw else (float(raw), ())
    except ValueError:
        raise ConfigError(
            f"SMS_MPS={raw!r}: a number, or provider:number pairs (twilio:10,android:1)"
        ) from None


def _number(name: str, raw: str, kind: Callable[[str], _N]) -> _N:
    """A numeric setting, or a ConfigError that names it (never a bare ValueError)."""
    try:
        return kind(raw.strip())
    except ValueError:
        wanted = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r}: {wanted}") from None


def _at_least(least: _N, name: str, raw: str, kind: Callable[[str], _N] = int) -> _N:
    """A numeric setting no smaller than `least` (a negative limit would lift it, not set it)."""
    value = _number(name, raw, kind)
    if value < least:
        raise ConfigError(f"{name}={raw!r}: at least {least}")
    return value


def _metrics_token(raw: str) -> str:
    """METRICS_TOKEN: unset, or long enough that guessing it is hopeless (it has no login waits)."""
    token = raw.strip()
    if token and len(token) < 16:
        raise ConfigError("METRICS_TOKEN: at least 16 characters (e.g. `openssl rand -hex 16`)")
    return token


MAX_URL_LENGTH = 2048


def _webhook_url(raw: str) -> str:
    """ALERT_WEBHOOK_URL: unset, or an http(s) URL (a typo should stop the start, not the alerts)."""
    url = raw.strip()
    if url and (not url.startswith(("https://", "http://")) or len(url) > MAX_URL_LENGTH):
        raise ConfigError(
            f"ALERT_WEBHOOK_URL: an http:// or https:// URL of at most {MAX_URL_LENGTH} characters"
        )
    return url


@dataclass(frozen=True)
class Limits:
    """What one texter may make Kabootar do (the abuse limits), for the commands and the fan-out."""

    max_mention_sms: int = 5  # @mentions in one post that are texted (the rest are links on the web)
    dm_per_hour: int = 30  # direct messages one texter may send in any hour
    max_follows: int = 200  # texters and #tags one texter may follow, together


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """REDIS_SENTINELS: "host:port,host:port,..." (IPv6 as [addr]:port)."""
    found = []
    for item in (p.strip() for p in raw.split(",") if p.strip()):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"REDIS_SENTINELS={raw!r}: host:port pairs, comma-separated (sentinel-1:26379,…)"
            )
        found.append((host, int(port)))
    return tuple(found)


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"  # where `make run` serves
    port: int = 5000
    public_url: str = ""  # the URL providers call; webhook signatures are checked against it
    redis_url: str | None = None  # None: `kabootar run` starts the embedded Redis under var_dir
    # Find the Redis primary through these Sentinels instead (REDIS_SENTINELS), by the name
    # they monitor it under; a failover is followed without a restart.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "kabootar"
    redis_password: str = ""  # the primary's and replicas' (requirepass / masterauth)
    redis_sentinel_password: str = ""  # the Sentinels' own, if they have one
    # A webhook is answered 200 (and an SMS sent, a post let out) only once its write reached
    # this many replicas (Redis WAIT), within this many ms; else 503 / retried later.
    # REDIS_WAIT_REPLICAS: 1 by default with REDIS_SENTINELS, else 0 (a lone Redis has none).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""  # also signs and verifies webhooks; the simulator's: simulator_secret
    twilio_from: str | None = None  # sender number, or …
    twilio_messaging_service_sid: str | None = None  # … a Messaging Service
    twilio_api_base_url: str = ""  # Twilio REST base; the simulator's when it is simulated
    # The providers that are on (SMS_PROVIDERS); a texter new to Kabootar is answered through
    # the one they texted, SMS without a known channel go through the first.
    sms_providers: tuple[str, ...] = ("twilio",)
    # SIMULATOR=1 and a provider that is on has no credentials: its simulator serves it (and
    # /dev/phone); without SIMULATOR=1 such a provider is a ConfigError (check_providers).
    twilio_simulated: bool = False
    android_gateway_url: str = ""  # the phone's local-server API; the simulator's when simulated
    android_gateway_user: str = ""  # its Basic auth
    android_gateway_password: str = ""
    android_webhook_signing_key: str = ""  # set in the app's settings
    android_simulated: bool = False
    android_country: str = ""  # ISO country of the phone's SIM, to read numbers it reports without one
    secret_key: str = ""  # sessions, and the root of the keys that protect phone numbers
    sms_mps: float = 1.0  # message segments per second each provider may be sent (SMS_MPS)
    sms_mps_by_provider: tuple[tuple[str, float], ...] = ()  # SMS_MPS=twilio:10,android:1
    # SMS that a provider keeps refusing with a retryable error for SMS_FAILOVER_AFTER seconds
    # go through another provider that is on (off by default: a second sender number appears).
    sms_failover: bool = False
    sms_failover_after: float = 300.0
    workers: int = 2  # worker processes `make run` starts
    sms_max_segments: int = 2  # longest fan-out SMS, in segments
    sender_posts_per_minute: int = 20  # posts one number may make per minute
    max_mention_sms: int = Limits.max_mention_sms  # MAX_MENTION_SMS: see `Limits`
    dm_per_hour: int = Limits.dm_per_hour  # DM_PER_HOUR
    max_follows: int = Limits.max_follows  # MAX_FOLLOWS
    metrics_public: bool = False  # serve /metrics without login
    # Keep and show http: media URLs too (a provider on plain http); else https: only.
    media_allow_http: bool = False
    # Proxies in front of the web app that append the client to X-Forwarded-For; 0: none,
    # the connection's own address is the client (rate limits and login waits count by it).
    # Set it only if the app cannot be reached but through them: else anyone can forge it.
    trusted_proxies: int = 0
    # Bearer token Prometheus scrapes /metrics with (METRICS_TOKEN); "": operators' sessions only.
    metrics_token: str = ""
    # Where alerts are POSTed as they start and end (ALERT_WEBHOOK_URL; gateway/ops/alert_webhook.py).
    alert_webhook_url: str = ""
    # The longest wait, in seconds, that failed console logins from one address earn (they double).
    ops_login_max_wait: float = 900.0
    # The HTTP server `kabootar web` runs the app under (WEB_SERVER): see gateway/box/servers.py.
    web_server: str = DEFAULT_WEB_SERVER
    var_dir: Path = field(default_factory=lambda: Path("var"))  # dev data: Redis files, secret key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read the environment (or `env`), fill the derived defaults, apply `overrides`."""
        env = os.environ if env is None else env
        var_dir = Path(env.get("KABOOTAR_VAR_DIR", "var"))
        host = env.get("HOST", "127.0.0.1")
        port = _number("PORT", env.get("PORT", "5000"), int)
        sid = env.get("TWILIO_ACCOUNT_SID", "")
        providers = _providers(env.get("SMS_PROVIDERS", "twilio"))
        simulate = env.get("SIMULATOR") == "1"
        if "twilio" in providers:
            _twilio_credentials(env)
        if "android" in providers:
            _half_configured(env, ANDROID_CREDENTIALS)
        twilio_simulated = simulate and "twilio" in providers and not sid
        android_url = env.get("ANDROID_GATEWAY_URL", "").rstrip("/")
        android_simulated = simulate and "android" in providers and not android_url
        public_url = (env.get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
        default_mps, mps_by_provider = _rates(env.get("SMS_MPS", "1"))
        sentinels = _sentinels(env.get("REDIS_SENTINELS", ""))
        cfg = cls(
            host=host,
            port=port,
            public_url=public_url,
            redis_url=env.get("REDIS_URL") or None,
            redis_sentinels=sentinels,
            redis_sentinel_master=env.get("REDIS_SENTINEL_MASTER", "").strip() or "kabootar",
            redis_password=env.get("REDIS_PASSWORD", ""),
            redis_sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", ""),
            redis_wait_replicas=_at_least(
                0, "REDIS_WAIT_REPLICAS", env.get("REDIS_WAIT_REPLICAS") or ("1" if sentinels else "0")
            ),
            redis_wait_timeout_ms=_at_least(
                1, "REDIS_WAIT_TIMEOUT_MS", env.get("REDIS_WAIT_TIMEOUT_MS") or "500"
            ),
            twilio_account_sid=sid or (SIMULATOR_ACCOUNT_SID if twilio_simulated else ""),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            twilio_from=env.get("TWILIO_FROM") or (SIMULATOR_FROM if twilio_simulated else None),
            twilio_messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            twilio_api_base_url=(
                env.get("TWILIO_API_BASE_URL")
                or (f"{public_url}/dev/twilio" if twilio_simulated else "https://api.twilio.com")
            ),
            sms_providers=providers,
            twilio_simulated=twilio_simulated,
            android_gateway_url=android_url or (f"{public_url}/dev/android" if android_simulated else ""),
            android_gateway_user=env.get("ANDROID_GATEWAY_USER")
            or (ANDROID_SIMULATOR_USER if android_simulated else ""),
            android_gateway_password=env.get("ANDROID_GATEWAY_PASSWORD", ""),
            android_webhook_signing_key=env.get("ANDROID_WEBHOOK_SIGNING_KEY", ""),
            android_simulated=android_simulated,
            android_country=env.get("ANDROID_COUNTRY", "").strip().upper(),
            secret_key=env.get("SECRET_KEY") or "",
            sms_mps=default_mps,
            sms_mps_by_provider=mps_by_provider,
            sms_failover=env.get("SMS_FAILOVER") == "1",
            sms_failover_after=_number("SMS_FAILOVER_AFTER", env.get("SMS_FAILOVER_AFTER", "300"), float),
            workers=_number("WORKERS", env.get("WORKERS", "2"), int),
            sms_max_segments=_number("SMS_MAX_SEGMENTS", env.get("SMS_MAX_SEGMENTS", "2"), int),
            sender_posts_per_minute=_number(
                "SENDER_POSTS_PER_MINUTE", env.get("SENDER_POSTS_PER_MINUTE", "20"), int
            ),
            max_mention_sms=_at_least(0, "MAX_MENTION_SMS", env.get("MAX_MENTION_SMS", "5")),
            dm_per_hour=_at_least(0, "DM_PER_HOUR", env.get("DM_PER_HOUR", "30")),
            max_follows=_at_least(0, "MAX_FOLLOWS", env.get("MAX_FOLLOWS", "200")),
            metrics_public=env.get("METRICS_PUBLIC") == "1",
            media_allow_http=env.get("MEDIA_ALLOW_HTTP") == "1",
            trusted_proxies=_number("TRUSTED_PROXIES", env.get("TRUSTED_PROXIES", "0"), int),
            metrics_token=_metrics_token(env.get("METRICS_TOKEN", "")),
            alert_webhook_url=_webhook_url(env.get("ALERT_WEBHOOK_URL", "")),
            ops_login_max_wait=_at_least(  # 0 would let a guesser try as fast as they like
                1.0, "OPS_LOGIN_MAX_WAIT", env.get("OPS_LOGIN_MAX_WAIT", "900"), float
            ),
            web_server=_web_server(env.get("WEB_SERVER", DEFAULT_WEB_SERVER)),
            var_dir=var_dir,
        )
        return (replace(cfg, **overrides) if overrides else cfg)._with_simulator_secrets()

    @property
    def simulator(self) -> bool:
        """Whether a provider's simulator serves (SIMULATOR=1; then every /dev/ page does too)."""
        return self.twilio_simulated or self.android_simulated

    def unconfigured(self) -> list[str]:
        """The providers that are on with neither credentials nor their simulator."""
        configured = {
            "twilio": bool(self.twilio_account_sid and self.twilio_auth_token),
            "android": bool(self.android_gateway_url and self.android_webhook_signing_key),
        }
        return [p for p in self.sms_providers if not (configured[p] or self.simulated(p))]

    def check_providers(self) -> None:
        """Refuse to serve (a ConfigError naming what to set) while a provider that is on has
        no credentials: the web app and the workers call it before they start."""
        wanted = {
            "twilio": "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM (or a Messaging Service)",
            "android": f"{', '.join(ANDROID_CREDENTIALS[:-1])} and {ANDROID_CREDENTIALS[-1]}",
        }
        missing = self.unconfigured()
        if missing:
            raise ConfigError(
                f"{missing[0]} has no credentials: set {wanted[missing[0]]}, or SIMULATOR=1 for the"
                " built-in simulators (`make run` sets it when no provider has any credentials)"
            )

    def simulated(self, provider: str) -> bool:
        """Whether `provider` is simulated (SIMULATOR=1, and it is on without credentials)."""
        return {"twilio": self.twilio_simulated, "android": self.android_simulated}.get(provider, False)

    @property
    def total_mps(self) -> float:
        """The segments per second all providers that are on may be sent together (0: one of
        them is unpaced, so there is no limit)."""
        rates = [self.mps(p) for p in self.sms_providers]
        return 0.0 if any(r <= 0 for r in rates) else sum(rates)

    @property
    def limits(self) -> Limits:
        """The abuse limits, as the commands and the fan-out read them."""
        return Limits(self.max_mention_sms, self.dm_per_hour, self.max_follows)

    def mps(self, provider: str) -> float:
        """The segments per second `provider` may be sent (0 or less: unpaced)."""
        return dict(self.sms_mps_by_provider).get(provider, self.sms_mps)

    def with_secret_key(self) -> Config:
        """Return a config whose secret key is set: SECRET_KEY, or one kept in var_dir for dev.

        The key protects every stored phone number, so a generated one is written once
        and reused: losing it would make the stored numbers unreadable.
        """
        if self.secret_key:
            return self._with_simulator_secrets()
        path = self.var_dir / "secret_key"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return replace(self, secret_key=path.read_text().strip())._with_simulator_secrets()

    def _with_simulator_secrets(self) -> Config:
        """Fill the simulated providers' token, password and signing key from the secret key
        (left empty until it is known: `with_secret_key` fills them then)."""
        if not self.secret_key:
            return self
        fill = {
            "twilio_auth_token": self.twilio_simulated,
            "android_gateway_password": self.android_simulated,
            "android_webhook_signing_key": self.android_simulated,
        }
        found: dict[str, Any] = {
            name: simulator_secret(self.secret_key, name)
            for name, simulated in fill.items()
            if simulated and not getattr(self, name)
        }
        return replace(self, **found) if found else self

    def as_env(self) -> dict[str, str]:
        """The environment that makes child processes build this same config."""
        rates = ",".join(f"{name}:{rate}" for name, rate in self.sms_mps_by_provider)
        env = {
            "HOST": self.host,
            "PORT": str(self.port),
            "PUBLIC_URL": self.public_url,
            "TWILIO_API_BASE_URL": self.twilio_api_base_url,
            "SECRET_KEY": self.secret_key,
            "SMS_PROVIDERS": ",".join(self.sms_providers),
            "SMS_MPS": rates or str(self.sms_mps),
            "SMS_FAILOVER": "1" if self.sms_failover else "0",
            "SMS_FAILOVER_AFTER": str(self.sms_failover_after),
            "WORKERS": str(self.workers),
            "SMS_MAX_SEGMENTS": str(self.sms_max_segments),
            "SENDER_POSTS_PER_MINUTE": str(self.sender_posts_per_minute),
            "MAX_MENTION_SMS": str(self.max_mention_sms),
            "DM_PER_HOUR": str(self.dm_per_hour),
            "MAX_FOLLOWS": str(self.max_follows),
            "KABOOTAR_VAR_DIR": str(self.var_dir),
            # The simulators' credentials are not passed: each process makes the same ones
            # from SECRET_KEY.
            "SIMULATOR": "1" if self.simulator else "0",
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.redis_sentinels:
            env["REDIS_SENTINELS"] = ",".join(f"{host}:{port}" for host, port in self.redis_sentinels)
            env["REDIS_SENTINEL_MASTER"] = self.redis_sentinel_master
        if self.redis_password:
            env["REDIS_PASSWORD"] = self.redis_password
        if self.redis_sentinel_password:
            env["REDIS_SENTINEL_PASSWORD"] = self.redis_sentinel_password
        env["REDIS_WAIT_REPLICAS"] = str(self.redis_wait_replicas)
        env["REDIS_WAIT_TIMEOUT_MS"] = str(self.redis_wait_timeout_ms)
        if not self.twilio_simulated:
            env["TWILIO_ACCOUNT_SID"] = self.twilio_account_sid
            env["TWILIO_AUTH_TOKEN"] = self.twilio_auth_token
        if self.twilio_from and not self.twilio_simulated:
            env["TWILIO_FROM"] = self.twilio_from
        if self.twilio_messaging_service_sid:
            env["TWILIO_MESSAGING_SERVICE_SID"] = self.twilio_messaging_service_sid
        if not self.android_simulated and "android" in self.sms_providers:
            env["ANDROID_GATEWAY_URL"] = self.android_gateway_url
            env["ANDROID_GATEWAY_USER"] = self.android_gateway_user
            env["ANDROID_GATEWAY_PASSWORD"] = self.android_gateway_password
            env["ANDROID_WEBHOOK_SIGNING_KEY"] = self.android_webhook_signing_key
        if self.android_country:
            env["ANDROID_COUNTRY"] = self.android_country
        if self.metrics_public:
            env["METRICS_PUBLIC"] = "1"
        if self.media_allow_http:
            env["MEDIA_ALLOW_HTTP"] = "1"
        if self.trusted_proxies:
            env["TRUSTED_PROXIES"] = str(self.trusted_proxies)
        if self.metrics_token:
            env["METRICS_TOKEN"] = self.metrics_token
        if self.alert_webhook_url:
            env["ALERT_WEBHOOK_URL"] = self.alert_webhook_url
        env["OPS_LOGIN_MAX_WAIT"] = str(self.ops_login_max_wait)
        env["WEB_SERVER"] = self.web_server
        return env
