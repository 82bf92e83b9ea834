"""The README's main job, re-run with a warm response store: what a developer waits for on the second run.

  python -m pytest examples --incumbent-model teacher --candidate-model teacher-bf16
         --candidate-model teacher-int8 --candidate-model student

The first run fills a temporary response store (not timed as the result; printed); then ROUNDS cached
re-runs, each a fresh pytest process, median wall time and peak RSS. The report goes to a temporary
folder, so the committed llmswap-report.html and the repository's .llmswap_cache are left alone. The job
exits 1 by design (the student regresses); that exit status is expected.

Run from the repository root: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_main_job.py [--rounds 5]
[--profile] (cProfile of one cached re-run: the top entries by cumulative and own time)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_scale import run
from measure import bench_env, pytest_cmd

ROOT = Path(__file__).resolve().parent.parent
JOB = ["examples", "--incumbent-model", "teacher", "--candidate-model", "teacher-bf16",
       "--candidate-model", "teacher-int8", "--candidate-model", "student"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args = [*JOB, "--llmswap-cache-dir", str(Path(tmp) / "cache"), "--llmswap-report", str(Path(tmp) / "r.html")]
        first, first_rss = run(args, ROOT, ok=(0, 1))
        print(f"first run (fills the store): {first:.1f} s, {first_rss:.0f} MiB")
        if opts.profile:
            stats = Path(tmp) / "job.prof"
            subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *pytest_cmd(args)[1:]], cwd=ROOT,
                           env=bench_env(), stdout=subprocess.DEVNULL, check=False)
            import pstats

            pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(30)
            pstats.Stats(str(stats)).sort_stats("tottime").print_stats(15)
            return
        walls, mems = zip(*(run(args, ROOT, ok=(0, 1)) for _ in range(opts.rounds)))
    print(f"cached re-run: median {statistics.median(walls):.1f} s of {opts.rounds} "
          f"({', '.join(f'{w:.1f}' for w in walls)}), peak RSS {max(mems):.0f} MiB")


if __name__ == "__main__":
    main()
