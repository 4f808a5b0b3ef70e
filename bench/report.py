"""The results: one row per figure, printed as a table and written to results.json."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import wrk


@dataclass
class Row:
    scenario: str
    measure: str
    kabootar: float | None  # None: not measured (see note)
    unit: str
    peers: dict[str, float | None] = field(default_factory=dict)
    ratio: float | None = None  # Kabootar / the peer named in ratio_of
    ratio_of: str = ""
    target: str = ""
    passed: bool | None = None  # None: no target, or nothing to judge
    note: str = ""


@dataclass
class Section:
    """What one scenario hands back: its rows, and every raw figure behind them."""

    rows: list[Row] = field(default_factory=list)
    raw: dict[str, object] = field(default_factory=dict)
    profiles: dict[str, object] = field(default_factory=dict)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,} {unit}".strip()
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def verdict(row: Row) -> str:
    return {True: "pass", False: "MISS", None: ""}[row.passed]


def table(rows: list[Row]) -> str:
    """A plain-text table (also valid Markdown) of every row."""
    head = ["scenario", "measure", "Kabootar", "peers", "ratio", "target", "result"]
    body = []
    for r in rows:
        peers = ", ".join(f"{k} {fmt(v)}" for k, v in r.peers.items()) or "—"
        ratio = f"{r.ratio:.2f}× {r.ratio_of}".strip() if r.ratio is not None else "—"
        kb = fmt(r.kabootar, r.unit) if r.kabootar is not None else (r.note.split(";")[0] or "—")
        body.append([r.scenario, r.measure, kb, peers, ratio, r.target or "—", verdict(r)])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(b) for b in body]
    return "\n".join(out)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.version(),
        "load_average_at_start": list(os.getloadavg()),
        "git_commit": commit.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else ""),
    }


def write(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
