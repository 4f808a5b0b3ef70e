"""wrk, the load generator: found or installed (Debian's package), run, and its report parsed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEND_ONCE = HERE / "wrk_send.lua"  # each text at most once, then stop (see the script)
ANDROID = HERE / "wrk_android.lua"  # the Android app's signed JSON webhooks
THREAD_DONE = "bench-thread-done"  # wrk_send.lua prints it when a thread has its last answer

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WrkMissing(RuntimeError):
    pass


def ensure() -> str:
    """The path of wrk, installing Debian's package first when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: wrk is missing; installing Debian's package (apt-get install -y wrk)…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing(
        "the benchmarks need wrk (the HTTP load generator): install it with "
        "'sudo apt-get install wrk' (Debian/Ubuntu) or from https://github.com/wg/wrk, then rerun"
    )


def version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"


@dataclass
class WrkResult:
    requests: int  # responses wrk counted
    seconds: float  # wrk's own measure of the run
    wall_seconds: float  # from starting wrk to its exit (includes reading the script's file)
    rps: float
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float] = field(default_factory=dict)  # "p50", "p75", "p90", "p99"
    statuses: dict[str, int] = field(default_factory=dict)  # from wrk_send.lua: ok, other
    cpu_seconds: float = 0.0  # wrk's own user + system time
    started_at: float = 0.0  # unix time wrk was started

    @property
    def ok(self) -> int:
        """Responses that were 2xx/3xx (Kabootar's webhook answers 200 or an error)."""
        return self.requests - self.non_2xx_3xx

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def _duration(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(output: str) -> dict[str, object]:
    """The figures in wrk's report (with --latency's percentiles when present)."""
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not m:
        raise ValueError(f"wrk printed no summary:\n{output}")
    requests, seconds = int(m.group(1)), _duration(m.group(2))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    latency = {
        f"p{p}": _duration(v) * 1000
        for p, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    line = re.search(r"^bench-statuses (.*)$", output, re.MULTILINE)  # printed by wrk_send.lua
    statuses = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))} if line else {}
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": float(rps.group(1)) if rps else requests / seconds,
        "non_2xx_3xx": int(non.group(1)) if non else 0,
        "socket_errors": dict(
            zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)
        )
        if sock
        else {},
        "latency_ms": latency,
        "statuses": statuses,
    }


def run(
    url: str,
    seconds: float,
    *,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    threads: int = 2,
    connections: int = 32,
    log: Path | None = None,
) -> WrkResult:
    """Run wrk against `url` for at most `seconds`, with --latency, and parse its report."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    argv += ["--timeout", "10s"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    full_env = {**os.environ, "WRK_THREADS": str(threads), **(env or {})}
    started = time.time()
    proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    lines, done = [], 0
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(THREAD_DONE):
                done += 1
                if done == threads:  # every text answered: end wrk's sleep through the rest of -d
                    proc.send_signal(signal.SIGINT)
                continue
            lines.append(line)
    except BaseException:  # Ctrl-C or a failure: wrk must not go on loading the machine
        proc.kill()
        proc.wait()
        raise
    output = "".join(lines)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - started
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{output}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{output}")
    return WrkResult(
        **parse(output),  # type: ignore[arg-type]
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        started_at=started,
    )
