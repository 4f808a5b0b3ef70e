"""The operator console: /ops (login, the live page, its JSON, actions) and /metrics."""

from gateway.ops import actions, bulk_views, chart_views, history_views, views  # noqa: F401  (importing them registers their routes)
from gateway.ops.blueprint import bp
from gateway.ops.metrics import bp as metrics_bp

__all__ = ["bp", "metrics_bp"]
