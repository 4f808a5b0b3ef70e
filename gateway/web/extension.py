"""What the web app keeps in `app.extensions["kabootar"]`: built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis
from rq import Queue

from gateway.providers.twilio import SignatureChecker
from gateway.runtime import Runtime


@dataclass(frozen=True)
class Kabootar:
    runtime: Runtime
    rq_redis: Redis  # RQ stores pickles: a client that does not decode responses
    queues: dict[str, Queue]
    signatures: SignatureChecker


def kabootar() -> Kabootar:
    ext: Kabootar = current_app.extensions["kabootar"]
    return ext
