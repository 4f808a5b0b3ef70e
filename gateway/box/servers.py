"""The HTTP servers `kabootar web` can run the app under (WEB_SERVER), set up alike:
WEB_CONCURRENCY processes (2 by default: one box, two cores), 8 threads each for the app
(a webhook spends most of its time waiting for Redis's fsync, and the texts that wait
together share one: gateway/store/group_commit.py), no access log (nothing that could
carry a phone number may reach a log), 10 s for a stopping process to finish its
requests, and SIGHUP for a graceful reload: new processes import the app anew while the
listening socket stays open, so no connection is refused.

- Granian, the default: a Rust HTTP server with a WSGI interface. HTTP parsing and
  connections are not Python there, which leaves the app's processes more of the two
  cores: in `make bench` the same app answered 1.5 × gunicorn's webhooks and about 1.4 ×
  its feed reads. It runs without HTTP keep-alive: its SIGHUP reload closes idle
  kept-alive connections at once, and a webhook sent on one at that moment was refused
  (11 of 1,472 in a rolling restart of `make run`); with one request per connection
  there is no idle connection to close, the rolling restart refused none, and the
  webhook rate stayed 1.48 × gunicorn's in the same run (1.53 × with keep-alive).
  Behind a proxy (`make ha`'s HAProxy), the proxy holds the clients' connections.
- gunicorn (WEB_SERVER=gunicorn): gthread workers, its settings in
  gateway/box/gunicorn_conf.py. All Python, so slower, and it answers a request that
  arrives on a kept-alive connection as it stops, then closes.
"""

from __future__ import annotations

import os
import sys

from gateway.config import Config

# Alternating runs of the ingest bench on 2 cores: 4 threads 0.67–0.70 × the no-op ceiling,
# 8 threads 0.79–0.83 ×, 16 no better; feed reads the same with 4 or 8.
APP_THREADS = 8
STOP_SECONDS = 10  # how long a stopping process may take to finish its requests

# `-c python:...` loads gunicorn settings from a module, so the Procfile and `kabootar web` share them.
GUNICORN = ["-m", "gunicorn", "-c", "python:gateway.box.gunicorn_conf", "gateway.web:create_app()"]


def processes() -> int:
    # Not a Kabootar setting but the servers' shared convention, which platforms set for you.
    return int(os.environ.get("WEB_CONCURRENCY", "2"))


def granian(config: Config) -> list[str]:
    """Granian's command line, after the Python interpreter."""
    return [
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--http",
        "1",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        str(processes()),
        "--blocking-threads",
        str(APP_THREADS),
        "--no-access-log",
        "--no-ws",  # no websockets in WSGI: saves a line in every start's log
        "--no-http1-keep-alive",  # one request per connection: see above
        "--workers-kill-timeout",
        str(STOP_SECONDS),
        "--respawn-failed-workers",  # as gunicorn's master does: a crashed worker is replaced
        "--factory",
        "gateway.web:create_app",
    ]


def argv(config: Config) -> list[str]:
    """The command that serves the app under `config.web_server`."""
    if config.web_server == "gunicorn":
        return [sys.executable, *GUNICORN]
    return [sys.executable, *granian(config)]
