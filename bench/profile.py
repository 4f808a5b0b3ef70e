"""Sampling profiles of the processes under load, with py-spy (no change to the code profiled).

py-spy writes collapsed stacks ("frame;frame;frame count", the input of flamegraph.pl
and speedscope) to bench/out/<name>.txt; from them this module draws <name>.svg (see
`flame`) and lists the functions that cost the most in <name>-top.txt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from bench import flame
from bench.procs import _die_with_parent


def py_spy() -> str | None:
    """py-spy from the venv (the `bench` extra) or PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy processes recording named targets until `finish`."""

    def __init__(self, out_dir: Path, rate: int = 100) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.binary = py_spy()
        self.running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []

    @property
    def available(self) -> bool:
        return self.binary is not None

    def attach(self, name: str, pid: int, subprocesses: bool = False) -> None:
        """Start sampling `pid` (and its children, for gunicorn) into profile `name`."""
        if self.binary is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        part = self.out_dir / f"{name}.part{len(self.running)}.txt"
        argv = [self.binary, "record", "-f", "raw", "-r", str(self.rate), "-o", str(part), "--pid", str(pid)]
        if subprocesses:
            argv.append("--subprocesses")
        log = open(self.out_dir / f"{name}.py-spy.log", "ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent
        )
        log.close()
        self.running.append((name, part, proc))

    def finish(self, top: int = 12) -> dict[str, dict[str, object]]:
        """Stop sampling; write each profile's .txt, .svg and -top.txt; return their summaries."""
        for _, _, proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        stacks: dict[str, dict[str, int]] = {}
        for name, part, proc in self.running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            merged = stacks.setdefault(name, {})
            if part.exists():
                for stack, count in flame.read_collapsed(part).items():
                    merged[stack] = merged.get(stack, 0) + count
                part.unlink()
        self.running.clear()
        summaries: dict[str, dict[str, object]] = {}
        for name, merged in stacks.items():
            raw, svg, top_file = (self.out_dir / f"{name}{ext}" for ext in (".txt", ".svg", "-top.txt"))
            flame.write_collapsed(raw, merged)
            svg.write_text(flame.svg(merged, title=f"{name}: py-spy, {sum(merged.values())} samples"))
            summary = flame.summary(merged, top)
            top_file.write_text(flame.summary_text(name, summary))
            summaries[name] = {
                **summary,
                "files": [str(p.relative_to(self.out_dir.parents[1])) for p in (raw, svg, top_file)],
            }
        return summaries

    def kill(self) -> None:
        """On failure: stop every py-spy at once."""
        for _, _, proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.running.clear()
