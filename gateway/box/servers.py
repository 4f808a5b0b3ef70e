"""The HTTP servers `kabootar web` can run the app under (WEB_SERVER), set up alike:
WEB_CONCURRENCY processes (2 by default: one box, two cores), 8 threads each for the app
(a webhook spends most of its time waiting for Redis's fsync, and the texts that wait
together share one: gateway/store/group_commit.py), no access log (nothing that could
carry a phone number may reach a log), 10 s for a stopping process to finish its
requests, and SIGHUP for a graceful reload: new processes import the app anew while the
listening socket stays open, so no connection is refused (but see Granian below).

- gunicorn, the default: gthread workers, its settings in gateway/box/gunicorn_conf.py
  (which the Procfile loads too).
- Granian: a Rust HTTP server with a WSGI interface. HTTP parsing and connections are not
  Python there, which leaves the app's processes more of the CPU: in `make bench` the same
  app answered about 1.4 × the feed reads and 1.6 × the webhooks on the same machine. Its
  SIGHUP reload closes kept-alive connections at once: without a proxy that drains a
  process first (`make ha` has one), a request sent on one at that moment is refused.
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
        "--workers-kill-timeout",
        str(STOP_SECONDS),
        "--respawn-failed-workers",  # as gunicorn's master does: a crashed worker is replaced
        "--factory",
        "gateway.web:create_app",
    ]


def argv(config: Config) -> list[str]:
    """The command that serves the app under `config.web_server`."""
    if config.web_server == "granian":
        return [sys.executable, *granian(config)]
    return [sys.executable, *GUNICORN]
