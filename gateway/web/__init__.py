"""Kabootar's web app: the Twilio webhook, the public feed, the dev phone."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from redis import Redis

from gateway.config import Config
from gateway.providers.twilio import SignatureChecker
from gateway.runtime import Runtime
from gateway.store.queues import make_queues
from gateway.web.extension import Kabootar


def create_app(config: Config | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app: settings from `config` (default: the environment), Flask overrides last."""
    config = (config or Config.from_env()).with_secret_key()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        KABOOTAR=config,
    )
    if test_config:
        app.config.update(test_config)

    runtime = Runtime.from_config(config)
    rq_redis = Redis.from_url(config.redis_url or "", socket_timeout=5, socket_connect_timeout=2)
    app.extensions["kabootar"] = Kabootar(
        runtime=runtime,
        rq_redis=rq_redis,
        queues=make_queues(rq_redis),
        signatures=SignatureChecker(config.twilio_auth_token, config.public_url),
    )

    from gateway.web import security as security_headers

    app.after_request(security_headers.add_headers)  # CSP, nosniff, no framing: every response

    from gateway.web import health
    from gateway.web import webhooks as webhook
    from gateway.web.feed import bp as feed_bp

    app.register_blueprint(webhook.bp)
    from gateway.web import status_callback

    app.register_blueprint(status_callback.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(feed_bp)
    from gateway import ops

    app.register_blueprint(ops.bp)
    app.register_blueprint(ops.metrics_bp)
    from gateway.web import replies as web_replies

    app.register_blueprint(web_replies.bp)
    if config.simulator:
        from gateway.web.devphone import bp as devphone_bp

        app.register_blueprint(devphone_bp)
        from gateway.providers.twilio.simulator import bp as simulator_bp

        app.register_blueprint(simulator_bp)

    from gateway.web.fast_webhooks import FastWebhook

    # Ordinary texts are stored before Flask is entered: see webhook_wsgi.py for why.
    fast = FastWebhook(app.wsgi_app, app.extensions["kabootar"], lambda: security_headers.header_list(app))
    app.wsgi_app = fast  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app
