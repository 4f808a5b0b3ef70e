"""How figures read on the console: numbers, rates, durations, sparklines.

static/ops.js formats the 2-second updates the same way (kinds "int", "rate", "dur",
"ago", "text"), so a figure reads alike before and after its first refresh.
"""

from __future__ import annotations

from collections.abc import Sequence

SPARK_WIDTH = 120
SPARK_HEIGHT = 24


def fmt_int(v: float | None) -> str:
    return "—" if v is None else f"{round(v):,}"


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def fmt_dur(seconds: float | None) -> str:
    """0.042 → "42 ms", 7.5 → "7.5 s", 125 → "2 min 5 s", 7300 → "2 h 1 min"."""
    if seconds is None:
        return "—"
    if seconds <= 0:
        return "0 s"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def fmt_ago(stamp: float | None, now: float) -> str:
    return "—" if stamp is None else f"{fmt_dur(max(0.0, now - stamp))} ago"


def fmt(value: object, kind: str = "text", now: float = 0.0) -> str:
    """Format `value` as the JS does for `data-k="path|kind"`."""
    if kind == "int":
        return fmt_int(value)  # type: ignore[arg-type]
    if kind == "rate":
        return fmt_rate(value)  # type: ignore[arg-type]
    if kind == "dur":
        return fmt_dur(value)  # type: ignore[arg-type]
    if kind == "ago":
        return fmt_ago(value, now)  # type: ignore[arg-type]
    return "" if value is None else str(value)


def spark_points(values: Sequence[float | None], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """SVG polyline points for a sparkline: gaps (None) read as 0, the top is the maximum."""
    if not values:
        return ""
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    step = width / max(1, len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 1 - (v or 0.0) / top * (height - 2):.1f}" for i, v in enumerate(values)
    )
