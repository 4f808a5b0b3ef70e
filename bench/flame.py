"""Collapsed stacks (py-spy's raw output) read, summarised and drawn as an SVG flame graph.

Frames are kept as "function (file)" without line numbers, so the samples of one
function add up; py-spy's "process N" frames are dropped, so the two gunicorn workers
(or two RQ workers) show as one.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
AREAS = (
    ("gateway/", "kabootar gateway/"),
    ("workers/", "kabootar workers/"),
    ("redis/", "redis-py client"),
    ("flask/", "flask + werkzeug"),
    ("werkzeug/", "flask + werkzeug"),
    ("jinja2/", "jinja2"),
    ("twilio/", "twilio library"),
    ("cryptography/", "cryptography (Fernet)"),
    ("phonenumbers/", "phonenumbers"),
    ("rq/", "rq"),
    ("gunicorn/", "gunicorn"),
    ("requests/", "requests + urllib3"),
    ("urllib3/", "requests + urllib3"),
)
_COLOURS = {
    "kabootar gateway/": "#f0a040",
    "kabootar workers/": "#f0c060",
    "redis-py client": "#e05050",
    "flask + werkzeug": "#5080e0",
    "twilio library": "#b070d0",
    "rq": "#50b0a0",
    "gunicorn": "#90a0b0",
    "python stdlib": "#c0c0c0",
}


def _frame(raw: str) -> str | None:
    if raw.startswith("process "):
        return None
    return _LINE.sub(")", raw)


def read_collapsed(path: Path) -> dict[str, int]:
    """{"f1;f2;f3": samples} from a py-spy raw file, line numbers and process frames dropped."""
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in (_frame(x) for x in stack.split(";")) if f]
        if frames:
            stacks[";".join(frames)] += int(count)
    return dict(stacks)


def write_collapsed(path: Path, stacks: dict[str, int]) -> None:
    path.write_text("".join(f"{s} {n}\n" for s, n in sorted(stacks.items())))


def area(frame: str) -> str:
    """Which library or part of Kabootar a frame belongs to."""
    file = frame.rsplit("(", 1)[-1].rstrip(")")
    for prefix, name in AREAS:
        if file.startswith(prefix):
            return name
    return "python stdlib" if "/" not in file else file.split("/", 1)[0]


def _entry(frame: str) -> bool:
    return any(
        f"({path})" in frame for path in ("gateway/box/cli.py", "workers/worker.py", "workers/__main__.py")
    )


def summary(stacks: dict[str, int], top: int = 12) -> dict[str, object]:
    """Samples; own time by area and by function; Kabootar's functions including their callees."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        own[frames[-1]] += n
        areas[area(frames[-1])] += n
        for f in set(frames):
            inclusive[f] += n

    def pct(rows: list[tuple[str, int]]) -> list[list[object]]:
        return [[name, round(100.0 * n / total, 1)] for name, n in rows]

    # Kabootar's own functions, callees included: which of them the time goes to (the
    # entry points that hold every sample, the CLI and the worker loop, left out).
    ours = [(f, n) for f, n in inclusive.most_common() if area(f).startswith("kabootar") and not _entry(f)]
    return {
        "samples": sum(stacks.values()),
        "self_pct": pct(own.most_common(top)),
        "inclusive_pct": pct(ours[:top]),
        "area_pct": pct(areas.most_common()),
    }


def summary_text(name: str, s: dict[str, object]) -> str:
    lines = [
        f"{name}: {s['samples']} samples (py-spy at 100 Hz; threads it saw idle left out, but a thread",
        "blocked reading a socket or sleeping often still shows: redis-py's socket reads ≈ waiting on Redis)",
        "",
    ]
    for key, title in (
        ("area_pct", "own time by area"),
        ("self_pct", "own time by function"),
        ("inclusive_pct", "Kabootar's functions, time including callees"),
    ):
        lines.append(title + ":")
        lines += [f"  {p:5.1f}%  {f}" for f, p in s[key]]  # type: ignore[attr-defined]
        lines.append("")
    return "\n".join(lines)


def svg(stacks: dict[str, int], title: str, width: int = 1400, row: int = 17) -> str:
    """An icicle-style flame graph: callers on top, width = share of samples; hover for numbers."""
    tree: dict[str, object] = {}
    for stack, n in stacks.items():
        node = tree
        for frame in stack.split(";"):
            child = node.setdefault(frame, {"#": 0, "c": {}})
            child["#"] += n  # type: ignore[index]
            node = child["c"]  # type: ignore[index,assignment]
    total = sum(stacks.values()) or 1
    rects: list[str] = []
    depth_max = 0

    def draw(node: dict[str, object], x: float, depth: int) -> None:
        nonlocal depth_max
        for frame, child in sorted(node.items()):
            n = child["#"]  # type: ignore[index]
            w = width * n / total
            if w >= 0.5:
                depth_max = max(depth_max, depth)
                y = 30 + depth * row
                label = html.escape(frame)
                colour = _COLOURS.get(area(frame), "#e0d070")
                text = html.escape(frame[: int(w / 7)]) if w > 30 else ""
                rects.append(
                    f"<g><title>{label} ({n} samples, {100 * n / total:.1f}%)</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{colour}"/>'
                    f'<text x="{x + 3:.1f}" y="{y + row - 5}">{text}</text></g>'
                )
                draw(child["c"], x, depth + 1)  # type: ignore[index,arg-type]
            x += w

    draw(tree, 0.0, 0)
    height = 40 + (depth_max + 1) * row
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<text x="4" y="18" font-size="14">{html.escape(title)}</text>' + "".join(rects) + "</svg>\n"
    )
