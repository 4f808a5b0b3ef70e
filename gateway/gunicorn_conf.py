"""gunicorn settings for the web process (`kabootar web` and the Procfile load this module).

Sync workers: every request is a few Redis round trips and no long waits, so a
process per request in flight is the simplest model that keeps up. Two by default
(one box, two cores); WEB_CONCURRENCY, the usual PaaS knob, overrides it.
"""

from __future__ import annotations

import os

from gateway.config import Config

_config = Config.from_env()

bind = f"[{_config.host}]:{_config.port}" if ":" in _config.host else f"{_config.host}:{_config.port}"
# Not a Kabootar setting but gunicorn's own convention, which platforms set for you.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10  # how long a stopping worker may finish its requests

# No access log: nothing that could carry a phone number may reach a log. (The webhook
# is a POST, so its form never appears in a request line, but a page's query could.)
accesslog = None
errorlog = "-"
loglevel = "info"

# gunicorn's control socket lives at one path per user, so two web processes on a box
# (a `make run` and the tests) would fight over it; nothing here uses `gunicornc`.
control_socket_disable = True
