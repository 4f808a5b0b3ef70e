"""The Runtime a worker process's jobs use: built on first use, never at import time."""

from __future__ import annotations

from gateway.config import Config
from gateway.runtime import Runtime

_runtime: Runtime | None = None


def use(runtime: Runtime) -> None:
    """Install the runtime for this process (the worker entry point and tests do)."""
    global _runtime
    _runtime = runtime


def current() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_config(Config.from_env())
    return _runtime
