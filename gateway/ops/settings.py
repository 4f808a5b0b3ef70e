"""The settings panel: the limits and switches an operator may want to check or change,
as the running app reads them (never a credential or a key)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config


@dataclass(frozen=True)
class Setting:
    name: str  # the environment variable that changes it (README: Configuration)
    value: str
    meaning: str


def _switch(on: bool) -> str:
    return "on" if on else "off"


def shown(config: Config) -> list[Setting]:
    """Every setting the console shows, in the README's order."""
    rates = ", ".join(f"{name}: {rate:g}" for name, rate in config.sms_mps_by_provider)
    return [
        Setting(
            "REDIS_SENTINELS",
            ", ".join(f"{host}:{port}" for host, port in config.redis_sentinels) or "unset",
            f"Sentinels that find the Redis primary (named {config.redis_sentinel_master!r})",
        ),
        Setting(
            "REDIS_WAIT_REPLICAS",
            f"{config.redis_wait_replicas} within {config.redis_wait_timeout_ms} ms",
            "replicas a text must reach before it is acknowledged (REDIS_WAIT_TIMEOUT_MS)",
        ),
        Setting("SMS_PROVIDERS", ", ".join(config.sms_providers), "providers that are on"),
        Setting("SIMULATOR", _switch(config.simulator), "built-in provider simulators and /dev/ pages"),
        Setting("SMS_MPS", rates or f"{config.sms_mps:g}", "segments per second each provider may be sent"),
        Setting("SMS_FAILOVER", _switch(config.sms_failover), "send through another provider when one fails"),
        Setting("SMS_FAILOVER_AFTER", f"{config.sms_failover_after:g} s", "how long a provider fails first"),
        Setting("SMS_MAX_SEGMENTS", str(config.sms_max_segments), "longest fan-out SMS, in segments"),
        Setting(
            "SENDER_POSTS_PER_MINUTE",
            str(config.sender_posts_per_minute),
            "posts one number may make a minute",
        ),
        Setting("MAX_MENTION_SMS", str(config.max_mention_sms), "@mentions in one post that are texted"),
        Setting("DM_PER_HOUR", str(config.dm_per_hour), "direct messages one texter may send an hour"),
        Setting("MAX_FOLLOWS", str(config.max_follows), "texters and #tags one texter may follow"),
        Setting("WORKERS", str(config.workers), "worker processes `make run` starts"),
        Setting("METRICS_PUBLIC", _switch(config.metrics_public), "/metrics served without login"),
        Setting(
            "MEDIA_ALLOW_HTTP", _switch(config.media_allow_http), "http: media URLs kept (else https: only)"
        ),
        # Whether there is one, never the token itself.
        Setting("METRICS_TOKEN", "set" if config.metrics_token else "unset", "the scraper's bearer token"),
        Setting(  # whether there is one: its path is often a secret
            "ALERT_WEBHOOK_URL",
            "set" if config.alert_webhook_url else "unset",
            "where alerts are POSTed as they start and end",
        ),
        Setting("TRUSTED_PROXIES", str(config.trusted_proxies), "proxies whose X-Forwarded-For is believed"),
        Setting(
            "OPS_LOGIN_MAX_WAIT",
            f"{config.ops_login_max_wait:g} s",
            "longest wait failed console logins from one address earn",
        ),
    ]
