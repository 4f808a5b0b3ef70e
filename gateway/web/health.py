"""GET /healthz (the process answers) and GET /readyz (Redis answers and a worker is alive)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from gateway.runtime import Runtime
from gateway.store import heartbeats

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    redis = Runtime.of(current_app).redis
    try:
        alive = heartbeats.alive(redis)
    except RedisError:
        return jsonify(status="unavailable", redis=False, workers=0), 503
    if not alive:
        return jsonify(status="unavailable", redis=True, workers=0), 503
    return jsonify(status="ok", redis=True, workers=alive)
