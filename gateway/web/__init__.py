"""Kabootar's web app: the providers' webhooks, the public feed, the reply form, the dev
phone, and (mounted from `gateway.ops`) the operator console."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from gateway import ops
from gateway.config import Config
from gateway.ops import alert_webhook
from gateway.runtime import EXTENSION, Runtime
from gateway.web import devphone, feed, health, replies, security, webhooks
from gateway.web.fast_webhooks import FastWebhook
from gateway.web.feed.fast import FastFeed


def create_app(config: Config | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app: settings from `config` (default: the environment), Flask overrides last."""
    config = (config or Config.from_env()).with_secret_key()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=webhooks.MAX_BODY_BYTES,  # every request: larger is a 413
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        KABOOTAR=config,
    )
    if test_config:
        app.config.update(test_config)

    runtime = Runtime.from_config(config)
    app.extensions[EXTENSION] = runtime
    app.after_request(security.add_headers)  # CSP, nosniff, no framing: every response
    for blueprint in (webhooks.bp, health.bp, feed.bp, replies.bp, ops.bp, ops.metrics_bp):
        app.register_blueprint(blueprint)
    if config.simulator:
        from gateway.providers.android.simulator import api as android_simulator
        from gateway.providers.twilio.simulator import api as twilio_simulator

        app.register_blueprint(devphone.bp)
        if config.twilio_simulated:
            app.register_blueprint(twilio_simulator.bp)
        if config.android_simulated:
            app.register_blueprint(android_simulator.bp)

    if config.alert_webhook_url:
        alert_webhook.start(runtime)  # in every web process: see gateway/ops/alert_webhook.py
    # Ordinary webhooks, the current newest page and (simulated) Twilio API calls are
    # answered before Flask is entered: see fast_webhooks.py, feed/fast.py and the
    # simulator's fast.py for why.
    if config.simulator and config.twilio_simulated:
        from gateway.providers.twilio.simulator.fast import FastSimulator

        app.wsgi_app = FastSimulator(app.wsgi_app, runtime, lambda: security.header_list(app))  # type: ignore[method-assign]
    app.wsgi_app = FastFeed(app.wsgi_app, runtime.redis)  # type: ignore[method-assign]
    app.wsgi_app = FastWebhook(app.wsgi_app, runtime, lambda: security.header_list(app))  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app
