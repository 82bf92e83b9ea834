"""Replay overhead: 1,000 contract cases with 3 checks each against bare pytest with 1,000 trivial tests.

Three runs side by side, interleaved, median of 5 each, wall time and peak RSS of the pytest process:
  bare      1,000 parametrized tests with 3 asserts each, no plugin in use
  replay    pytest with no flags: 1,000 goldens read and checked offline
  echo      --candidate-model echo: every case run on the echo model, drift scored, HTML report written

Run: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_replay.py
(users keep .pyc files; with PYTHONDONTWRITEBYTECODE=1 every run recompiles what it imports.)
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench_scale import BARE, CONTRACT, run  # the same two suites, at N cases
from measure import interleaved

N = 1000
ROUNDS = 5


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("[tool.llmswap]\nsemantic = false\n")
        (root / "bare").mkdir()
        (root / "bare" / "test_bare.py").write_text(BARE.format(n=N))
        (root / "suite").mkdir()
        (root / "suite" / "test_contract.py").write_text(CONTRACT.format(n=N, extra=""))
        run(["suite", "--incumbent-model", "echo", "--llmswap-record", "new"], root)
        runs = {
            "bare pytest, 1,000 trivial tests": ["bare"],
            "replay, no flags": ["suite"],
            "echo candidate + HTML report": ["suite", "--candidate-model", "echo",
                                             "--llmswap-report", str(root / "r.html")],
        }
        for args in runs.values():  # warm-up: compile .pyc files and fill the response cache
            run(args, root)
        times, mems = interleaved({k: (lambda a=a: run(a, root)) for k, a in runs.items()}, ROUNDS)
    base = statistics.median(times["bare pytest, 1,000 trivial tests"])
    print(f"| run | wall, median of {ROUNDS} | vs bare | peak RSS |")
    print("|---|---|---|---|")
    for name in runs:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.2f} s | {med / base:.2f}x | {statistics.median(mems[name]):.0f} MiB |")


if __name__ == "__main__":
    main()
