"""Starting the systems under test: Kabootar as `make run` runs it, and the baseline peers.

Kabootar: redis-server started the way `kabootar run` starts it (gateway/box/embedded_redis.py,
append-only file fsynced on every write unless a scenario says otherwise), `kabootar web`
(Granian or gunicorn as gateway/box/servers.py sets them up) and `kabootar worker`
processes. The peers run from ../shared/baseline as its README says: `gunicorn -w 2
app:app` / `noop_app:app`, and `rq worker` (forking by default, or SimpleWorker),
against the same kind of redis-server.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from bench.procs import Fleet, Proc, _die_with_parent, wait_http
from gateway.box import embedded_redis
from gateway.config import DEFAULT_WEB_SERVER, Config
from gateway.phones import PhoneVault

SECRET_KEY = "kabootar-bench-secret-key"  # the bench's own data only: thrown away after each run
# What the simulators Kabootar runs with (SIMULATOR=1) make of that key: the Twilio token the
# bench signs webhooks with (the peers get it too), and the phone's signing key.
SIMULATED = Config.from_env({"SECRET_KEY": SECRET_KEY, "SIMULATOR": "1", "SMS_PROVIDERS": "twilio,android"})
AUTH_TOKEN = SIMULATED.twilio_auth_token
ANDROID_SIGNING_KEY = SIMULATED.android_webhook_signing_key
# Settings a developer's shell may carry; the processes under test get only ours.
_SETTINGS = (
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "WORKERS",
    "KABOOTAR_VAR_DIR",
    "SMS_MPS",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
    "WEB_CONCURRENCY",
    "WEB_SERVER",
    "SENDER_POSTS_PER_MINUTE",
    "METRICS_PUBLIC",
    "SIMULATOR",
    "SMS_PROVIDERS",
    "ANDROID_GATEWAY_URL",
    "ANDROID_GATEWAY_USER",
    "ANDROID_GATEWAY_PASSWORD",
    "ANDROID_WEBHOOK_SIGNING_KEY",
)


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def baseline_dir() -> Path | None:
    """../shared/baseline beside the repository (or BASELINE_DIR), if it is there."""
    configured = os.environ.get("BASELINE_DIR")
    path = (
        Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared" / "baseline"
    )
    return path if (path / "app.py").exists() else None


@dataclass
class RedisServer:
    url: str
    proc: Proc
    data_dir: Path

    def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=True, socket_timeout=60)

    def used_memory(self) -> int:
        return int(self.client().info("memory")["used_memory"])

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])


def wait_for_replicas(primary: RedisServer, count: int, timeout: float = 30.0) -> None:
    """Until `count` replicas are in sync with `primary` (WAIT would otherwise time out)."""
    client, deadline = primary.client(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        if sum(1 for v in online if v.get("state") == "online") >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} replicas did not come in sync with {primary.url} in {timeout:.0f}s")


def start_redis(fleet: Fleet, name: str, durable: bool, replica_of: RedisServer | None = None) -> RedisServer:
    """redis-server on a free port, data in a scratch directory removed at exit (see cleanup);
    with `replica_of`, a replica of that one."""
    data = Path(tempfile.mkdtemp(prefix=f"kb-bench-{name}-"))
    port = embedded_redis.free_port()
    extra = ("--replicaof", "127.0.0.1", str(replica_of.port)) if replica_of else ()
    popen = embedded_redis.start(
        data, port, durable=durable, extra=extra, start_new_session=True, preexec_fn=_die_with_parent
    )
    fleet.scratch.append(data)
    proc = fleet.adopt("redis", name, popen)
    return RedisServer(f"redis://127.0.0.1:{port}/0", proc, data)


@dataclass
class Kabootar:
    base_url: str
    env: dict[str, str]
    redis_server: RedisServer
    web: Proc | None = None
    workers: list[Proc] = field(default_factory=list)

    @property
    def redis(self) -> Redis:
        return self.redis_server.client()

    @property
    def vault(self) -> PhoneVault:
        return PhoneVault(SECRET_KEY)

    @property
    def webhook_url(self) -> str:
        """The URL Twilio calls, which webhooks are signed for."""
        return self.base_url + "/twilio/sms"


def start_kabootar(
    fleet: Fleet,
    port: int,
    *,
    workers: int = 2,
    durable: bool = True,
    sms_mps: str = "1",
    providers: str = "twilio",
    server: str = DEFAULT_WEB_SERVER,
    replicas: int = 0,
    **extra: str,
) -> Kabootar:
    """Redis, `kabootar web` on `port` and `workers` × `kabootar worker`, set up as `make run` does.

    The port is the same for every Kabootar of a bench run, so the webhooks signed for
    its PUBLIC_URL once serve them all (one runs at a time). `server`: WEB_SERVER, the HTTP
    server `kabootar web` runs the app under (gateway/box/servers.py). `replicas`: that many
    replicas of its Redis (each as durable), and every acknowledgement waits for one of them
    (REDIS_WAIT_REPLICAS=1, as with `make ha`). `extra`: more settings.
    """
    redis = start_redis(fleet, "redis", durable)
    for i in range(replicas):
        start_redis(fleet, f"replica-{i + 1}", durable, replica_of=redis)
    if replicas:
        wait_for_replicas(redis, replicas)
        extra = {"REDIS_WAIT_REPLICAS": "1", **extra}
    var_dir = redis.data_dir / "var"
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_URL=base,
        REDIS_URL=redis.url,
        SECRET_KEY=SECRET_KEY,
        WORKERS=str(workers),
        SMS_MPS=sms_mps,
        SMS_PROVIDERS=providers,
        SIMULATOR="1",
        KABOOTAR_VAR_DIR=str(var_dir),
        WEB_SERVER=server,
        **extra,
    )
    cli = [sys.executable, "-m", "gateway.box.cli"]
    kb = Kabootar(base, env, redis)
    kb.web = fleet.start("web", "kabootar-web", [*cli, "web"], env)
    kb.workers = [
        fleet.start("worker", f"kabootar-worker-{i}", [*cli, "worker"], env) for i in range(workers)
    ]
    wait_http(base + "/healthz", fleet)
    return kb


@dataclass
class Peer:
    base_url: str
    web: Proc
    redis_server: RedisServer | None
    worker: Proc | None = None


def start_peer(
    fleet: Fleet,
    baseline: Path,
    module: str,
    signed_url: str,
    *,
    redis: RedisServer | None = None,
    worker_class: str | None = None,
    with_worker: bool = False,
) -> Peer:
    """A baseline app under `gunicorn -w 2`, and optionally its `rq worker`, from the baseline folder."""
    port = embedded_redis.free_port()
    env = clean_env(TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_URL=signed_url)
    if redis is not None:
        env["REDIS_URL"] = redis.url
    argv = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}"]
    argv += ["--no-control-socket", f"{module}:app"]
    web = fleet.start("peer-web", f"{module}-web", argv, env, cwd=baseline)
    peer = Peer(f"http://127.0.0.1:{port}", web, redis)
    if with_worker:
        assert redis is not None
        rq = [sys.executable, "-m", "rq.cli", "worker", "-u", redis.url, "-P", str(baseline), "-q"]
        if worker_class:
            rq += ["-w", worker_class]
        peer.worker = fleet.start("peer-worker", f"{module}-rq-worker", [*rq, "inbound"], env, cwd=baseline)
    wait_http(peer.base_url + "/sms", fleet)
    return peer
