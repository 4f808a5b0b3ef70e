"""GET /healthz (the process answers) and GET /readyz (Redis answers and a worker is alive).

/readyz says "degraded" (still 200: texts are taken and stored) when an SMS provider that is
on is in trouble: refusing SMS, not answering its health probe, or marked down.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway.outbox import routes
from gateway.runtime import Runtime
from gateway.store import heartbeats

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
    except RedisError:
        return jsonify(status="unavailable", redis=False, workers=0), 503
    if not alive:
        return jsonify(status="unavailable", redis=True, workers=0), 503
    providers = {name: health.state(name) for name in names}
    status = "ok" if all(state == "up" for state in providers.values()) else "degraded"
    return jsonify(status=status, redis=True, workers=alive, providers=providers)
