"""What every scenario is handed: the sizes of this run, where things go, the signed requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import signed
from bench.procs import Fleet
from bench.stacks import AUTH_TOKEN

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

# Where each request file's senders start, so no two files share a number (see signed.sender).
SENDERS = {
    "ingest": 0,
    "e2e": 1_000_000,
    "latency": 2_000_000,
    "profile": 3_000_000,
    "warm": 4_000_000,
    "first": 5_000_000,
    "capacity": 6_000_000,
    "capacity-first": 7_000_000,
}


@dataclass(frozen=True)
class Settings:
    """Sizes and durations: the full run (about 15 minutes) or BENCH_QUICK=1's smoke run."""

    quick: bool
    workers: int  # `kabootar worker` processes, as `make run` (WORKERS, default 2)
    ingest_seconds: float
    ingest_requests: int  # more than the fastest app answers in ingest_seconds: no sid is sent twice
    e2e_texts: int
    e2e_fork_texts: int  # the tutorial's forking worker does ~87/s: fewer texts
    e2e_simple_texts: int
    latency_rate: float
    latency_seconds: float
    fanout_followers: int
    fanout_mps: float
    fanout_paced_seconds: float
    fanout_timeout: float
    feed_posts: int
    feed_authors: int
    feed_seconds: float
    profile_seconds: float
    profile_texts: int
    capacity_texts: int
    capacity_followers: int
    warm_texts: int = 300

    @property
    def profile_lines(self) -> int:
        """The profile request file: profile_texts for end to end, then enough for ingest's run."""
        return self.profile_texts + int(5_000 * self.profile_seconds)

    @classmethod
    def from_env(cls) -> Settings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        workers = int(os.environ.get("WORKERS", "2"))
        if quick:
            return cls(
                quick=True,
                workers=workers,
                ingest_seconds=3,
                ingest_requests=25_000,
                e2e_texts=2_000,
                e2e_fork_texts=150,
                e2e_simple_texts=600,
                latency_rate=200,
                latency_seconds=8,
                fanout_followers=1_000,
                fanout_mps=100,
                fanout_paced_seconds=8,
                fanout_timeout=60,
                feed_posts=50_000,
                feed_authors=1_000,
                feed_seconds=3,
                profile_seconds=3,
                profile_texts=1_000,
                capacity_texts=1_000,
                capacity_followers=500,
            )
        return cls(
            quick=False,
            workers=workers,
            ingest_seconds=10,
            ingest_requests=90_000,
            e2e_texts=20_000,
            e2e_fork_texts=1_000,
            e2e_simple_texts=4_000,
            latency_rate=200,
            latency_seconds=60,
            fanout_followers=10_000,
            fanout_mps=100,
            fanout_paced_seconds=60,
            fanout_timeout=120,
            feed_posts=1_000_000,
            feed_authors=10_000,
            feed_seconds=10,
            profile_seconds=8,
            profile_texts=8_000,
            capacity_texts=10_000,
            capacity_followers=5_000,
        )


@dataclass
class Context:
    settings: Settings
    baseline: Path | None
    port: int  # Kabootar's port for the whole run: the signed requests name it
    out: Path = OUT
    files: dict[str, Path] = field(default_factory=dict)
    # Figures one scenario hands another in the same run (the returning texters' rate, which
    # the first-time texters' is a ratio of).
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def signed_url(self) -> str:
        """The URL every request file is signed for: Kabootar's PUBLIC_URL + /twilio/sms."""
        return f"http://127.0.0.1:{self.port}/twilio/sms"

    def requests(self, name: str, count: int) -> Path:
        """A file of `count` signed webhooks (made once per run), senders from SENDERS[name]."""
        path = self.out / "requests" / f"{name}.txt"
        if name not in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            signed.write(path, self.signed_url, AUTH_TOKEN, count, SENDERS[name])
            self.files[name] = path
        return path

    def slice(self, name: str, start: int, count: int) -> Path:
        """Lines [start, start + count) of a request file, as a file of their own."""
        source = self.files[name]
        path = self.out / "requests" / f"{name}-{start}-{count}.txt"
        with open(source) as f:
            lines = f.readlines()[start : start + count]
        if len(lines) < count:
            raise ValueError(f"{source} has too few requests")
        path.write_text("".join(lines))
        return path

    @contextmanager
    def fleet(self, name: str) -> Iterator[Fleet]:
        """Processes for one scenario, all stopped when it ends (however it ends)."""
        fleet = Fleet(self.out / "logs" / name)
        try:
            yield fleet
        finally:
            fleet.stop_all()

    def describe(self) -> dict[str, object]:
        return {**asdict(self.settings), "baseline_dir": str(self.baseline) if self.baseline else None}
