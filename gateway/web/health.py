"""GET /healthz (the process answers) and GET /readyz (Redis answers and a worker is alive).

/readyz says "degraded" (still 200: the process is sound, and a reverse proxy keeps it) when
an SMS provider that is on is in trouble: refusing SMS, not answering its health probe, or
marked down; or while the Redis it reaches takes no writes (a replica, or a primary whose
`min-replicas-to-write` is unmet): texts get 503 then, until a failover gives it a primary.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway.outbox import routes
from gateway.runtime import Runtime
from gateway.store import heartbeats, primary

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    runtime = Runtime.of(current_app)
    names = runtime.config.sms_providers
    try:
        alive = heartbeats.alive(runtime.redis)
        health = routes.read_health(runtime.redis, names)
        reached = primary.reach(runtime.redis)
    except RedisError:
        return jsonify(status="unavailable", redis=False, workers=0), 503
    if not alive:
        return jsonify(status="unavailable", redis=True, workers=0), 503
    providers = {name: health.state(name) for name in names}
    sound = reached.writable and all(state == "up" for state in providers.values())
    return jsonify(
        status="ok" if sound else "degraded",
        redis=True,
        redis_role=reached.role,
        redis_writable=reached.writable,
        workers=alive,
        providers=providers,
    )
