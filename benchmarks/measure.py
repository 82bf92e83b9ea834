"""What every benchmark here shares: run a process and measure it, and interleave the runs being compared.

Runs are interleaved round by round and compared by their medians, because these machines are shared: a
burst of load then falls on every variant alike instead of on whichever happened to run at that moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def bench_env() -> dict[str, str]:
    """This environment without PYTHONDONTWRITEBYTECODE: users keep .pyc files."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def pytest_cmd(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def timed(cmd: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
          ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process; its output is shown if it exits with another code."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env if env is not None else bench_env()),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def interleaved(runs: Mapping[str, Callable[[], tuple[float, float]]],
                rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each run once per round, round after round: their wall times and peak RSS, by name."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    mems: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, measure in runs.items():
            wall, rss = measure()
            times[name].append(wall)
            mems[name].append(rss)
    return times, mems
