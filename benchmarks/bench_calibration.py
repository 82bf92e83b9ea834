"""Stable local prices: the README's main job priced in a quiet run and under two busy loops, and a copy.

A temporary project holds the example suite, its models, and a byte-identical copy of the teacher in another
folder, named ``copy``. The first run fills the response store (not a result). Then ROUNDS pairs of runs, each
with ``--llmswap-recalibrate`` so every run measures again: one quiet, one with two ``python -c 'while True:
pass'`` loops running. Reported: each model's monthly cost per run, the busy/quiet ratio of the incumbent's,
and the copy's cost over the incumbent's.

Run from the repository root: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_calibration.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import timed

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"teacher": "examples/models/teacher", "copy": "elsewhere/teacher", "student": "examples/models/student"}
JOB = ["examples", "--incumbent-model", "teacher", "--candidate-model", "copy", "--candidate-model", "student",
       "--llmswap-json", "out.json"]


def project(tmp: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp / "examples", ignore=shutil.ignore_patterns("__pycache__", ".llmswap*"))
    shutil.copytree(ROOT / "examples" / "models" / "teacher", tmp / "elsewhere" / "teacher")
    (tmp / "pyproject.toml").write_text("".join(f'[tool.llmswap.models.{name}]\nmodel = "hf:{path}"\n'
                                                "gpu_hour_usd = 0.40\n\n" for name, path in MODELS.items()))


def monthly(tmp: Path, busy: bool) -> dict[str, float]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if busy else 0)]
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *JOB, "--llmswap-recalibrate"],
              tmp, env=env, ok=(0, 1))
        load = os.getloadavg()[0]
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    switching = json.loads((tmp / "out.json").read_text())["summaries"]["switching"]
    costs = {"teacher": switching["copy"]["incumbent_monthly_usd"],
             **{name: switching[name]["candidate_monthly_usd"] for name in ("copy", "student")}}
    print(f"{'busy ' if busy else 'quiet'} load {load:.1f}: " + ", ".join(f"{k} ${v:.4f}" for k, v in costs.items()))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        project(tmp)
        monthly(tmp, busy=False)  # fills the response store
        runs = [(monthly(tmp, False), monthly(tmp, True)) for _ in range(opts.rounds)]
    ratio = statistics.median(busy["teacher"] / quiet["teacher"] for quiet, busy in runs)
    copy = statistics.median(r["copy"] / r["teacher"] for pair in runs for r in pair)
    print(f"incumbent busy/quiet: median {ratio:.2f}x; copy/incumbent: median {copy:.2f}x")


if __name__ == "__main__":
    main()
