"""gunicorn settings for the web process (`kabootar web` and the Procfile load this module).

Threaded workers (gthread): a webhook spends much of its time waiting for Redis to
fsync the text (appendfsync always), and threads let other requests run meanwhile,
which also lets Redis fsync several texts at once; they keep HTTP connections alive,
which sync workers do not. Measured with `make bench` (ingest), this took the webhook
from 0.42× to 0.56× of the no-op ceiling on the same machine. Two processes by default
(one box, two cores); WEB_CONCURRENCY, the usual PaaS knob, overrides it.
"""

from __future__ import annotations

import sys

from gateway.box import servers
from gateway.config import Config, ConfigError

try:
    _config = Config.from_env()
    _config.check_providers()
except ConfigError as e:  # gunicorn started directly (the Procfile): say why, not a traceback
    print(f"kabootar: {e}", file=sys.stderr)
    sys.exit(2)

bind = f"[{_config.host}]:{_config.port}" if ":" in _config.host else f"{_config.host}:{_config.port}"
workers = servers.processes()
worker_class = "gthread"
threads = servers.APP_THREADS  # requests in flight per process while others wait on Redis
timeout = 30
graceful_timeout = servers.STOP_SECONDS  # how long a stopping worker may finish its requests

# No access log: nothing that could carry a phone number may reach a log. (The webhook
# is a POST, so its form never appears in a request line, but a page's query could.)
accesslog = None
errorlog = "-"
loglevel = "info"

# gunicorn's control socket lives at one path per user, so two web processes on a box
# (a `make run` and the tests) would fight over it; nothing here uses `gunicornc`.
control_socket_disable = True
