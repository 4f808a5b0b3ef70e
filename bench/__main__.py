"""`python -m bench` (`make bench`): run every scenario, print the table, write the results.

    BENCH_QUICK=1      a smoke run of every scenario with small sizes (a minute or two)
    BENCH_ONLY=a,b     only these scenarios: ingest, e2e, first, latency, fanout, feed, capacity,
                       charts, history
    BASELINE_DIR=path  the peers' folder (default ../shared/baseline beside the repository)
    WORKERS=n          Kabootar's worker processes, as for `make run` (default 2)

A full run writes bench/results.json (committed: the latest figures); a quick or partial
run writes bench/out/results-quick.json or results-partial.json instead. Profiles,
logs and the signed requests go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench import capacity, charts, e2e, fanout, feed, first, history, ingest, latency, report, wrk
from bench.context import HERE, OUT, Context, Settings
from bench.report import Row, Section
from bench.stacks import baseline_dir
from gateway.box import embedded_redis

SCENARIOS: dict[str, Callable[[Context], Section]] = {
    "ingest": ingest.run,
    "e2e": e2e.run,
    "first": first.run,
    "latency": latency.run,
    "fanout": fanout.run,
    "feed": feed.run,
    "capacity": capacity.run,
    "charts": charts.run,
    "history": history.run,
}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every scenario's `finally`, which stops its processes


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: even if started ignoring it
        signal.signal(sig, _terminate)
    os.chdir(HERE.parent)  # git and relative paths behave the same from anywhere
    settings = Settings.from_env()
    only = [x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()]
    unknown = [x for x in only if x not in SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        return 2
    try:
        wrk.ensure()
    except wrk.WrkMissing as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    baseline = baseline_dir()
    ctx = Context(settings, baseline, port=embedded_redis.free_port())
    OUT.mkdir(parents=True, exist_ok=True)
    mode = "quick" if settings.quick else "full"
    print(f"bench: {mode} run on {os.cpu_count()} cores; Kabootar on {ctx.signed_url}", flush=True)
    if baseline is None:
        print("bench: no baseline folder (../shared/baseline or BASELINE_DIR): the peer columns are skipped")
    document: dict[str, object] = {
        "date": report.now_iso(),
        "mode": mode,
        "machine": report.machine(),
        "settings": ctx.describe(),
        "command": "BENCH_QUICK=1 make bench" if settings.quick else "make bench",
    }
    rows: list[Row] = []
    raw: dict[str, object] = {}
    profiles: dict[str, object] = {}
    started = time.time()
    for name, scenario in SCENARIOS.items():
        if only and name not in only:
            continue
        t = time.time()
        print(f"bench: {name}…", flush=True)
        try:
            section = scenario(ctx)
        except KeyboardInterrupt:
            print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
            return 130
        except Exception as e:  # one broken scenario must not hide the others' figures
            traceback.print_exc()
            section = Section(rows=[Row(name, "error", None, "", note=f"failed: {type(e).__name__}: {e}")])
            section.raw = {"error": traceback.format_exc()}
        raw[name] = {**section.raw, "seconds": round(time.time() - t, 1), "load_average": os.getloadavg()}
        profiles.update(section.profiles)
        rows += section.rows
        print(report.table(section.rows), flush=True)
    document["duration_seconds"] = round(time.time() - started, 1)
    document["rows"] = rows
    document["scenarios"] = raw
    document["profiles"] = profiles
    print("\n" + report.table(rows))
    _print_profiles(profiles)
    if settings.quick:
        path = OUT / "results-quick.json"
    elif only:
        path = OUT / "results-partial.json"
    else:
        path = HERE / "results.json"
    report.write(path, document)
    print(f"\nbench: {document['duration_seconds']:.0f}s; results in {path.relative_to(Path.cwd())}")
    return 0


def _print_profiles(profiles: dict[str, object]) -> None:
    for name, summary in profiles.items():
        if not isinstance(summary, dict) or "self_pct" not in summary:
            continue
        print(f"\nprofile {name} ({summary['samples']} samples, files in bench/out/profiles/):")
        areas = ", ".join(f"{a} {p}%" for a, p in summary["area_pct"][:6])
        print(f"  by area: {areas}")
        for func, pct in summary["inclusive_pct"][:8]:
            print(f"  {pct:5.1f}%  {func}")


if __name__ == "__main__":
    sys.exit(main())
