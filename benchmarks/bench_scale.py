"""Suites of 1,000 and 10,000 cases: per-case and statistical contracts against bare pytest.

For each size N, side by side, interleaved, a fresh pytest process per run (imports count), wall time and
peak RSS of that process:
  bare         N parametrized tests with the same 3 asserts, no plugin in use
  per-case     --candidate-model echo over N recorded goldens: one item per case, drift scored, HTML report
  statistical  the same with @llm_contract(min_pass_rate=0.9): one item per model row (only when the
               installed llm_contract accepts min_pass_rate; otherwise the row says so)

Run: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_scale.py [--sizes 1000 10000] [--rounds 5]
     [--against DIR]   (also runs the contract suites on the checkout in DIR, by PYTHONPATH, interleaved:
                        before and after a change, e.g. DIR from `git worktree add /tmp/before <commit>`)
     [--profile per-case|statistical --size N]   (cProfile of one run: the top entries by cumulative time)
Semantic scoring is off (semantic = false), as in bench_replay.py; bench_semantic_fastpath.py measures it.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import bench_env, interleaved, pytest_cmd, timed

from pytest_llmswap import llm_contract

BARE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_bare(i):
    text = f"ticket {{i}}"
    assert text.startswith("ticket")
    assert str(i) in text
    assert len(text) < 100
"""

CONTRACT = """
from pytest_llmswap import llm_contract

@llm_contract(prompt="ticket {{{{ n }}}}", cases=[{{"id": f"c{{i}}", "n": i}} for i in range({n})]{extra})
def test_contract(output, case):
    assert output.text.startswith("ticket")
    assert str(case["n"]) in output.text
    assert len(output.text) < 100
"""


def statistical_supported() -> bool:
    """Whether this checkout's llm_contract has statistical mode (it is being built alongside this script)."""
    return "min_pass_rate" in inspect.signature(llm_contract).parameters


def run(args: list[str], cwd: Path, ok: tuple[int, ...] = (0,), tree: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one pytest process (with the plugin of checkout ``tree``, if given)."""
    env = bench_env() if tree is None else {**bench_env(), "PYTHONPATH": str(tree)}
    return timed(pytest_cmd(args), cwd, env=env, ok=ok)


def make_suites(root: Path, n: int, tree: Path | None = None) -> dict[str, list[str]]:
    """Write the suites for N cases under ``root``, record their goldens; the pytest args of each run."""
    (root / "pyproject.toml").write_text("[tool.llmswap]\nsemantic = false\n")
    (root / "bare").mkdir()
    (root / "bare" / "test_bare.py").write_text(BARE.format(n=n))
    suites = {"per-case": ""}
    if statistical_supported():
        suites["statistical"] = ", min_pass_rate=0.9"
    runs = {"bare": ["bare"]}
    for name, extra in suites.items():
        (root / name).mkdir()
        (root / name / "test_contract.py").write_text(CONTRACT.format(n=n, extra=extra))
        run([name, "--incumbent-model", "echo", "--llmswap-record", "new"], root, tree=tree)
        runs[name] = [name, "--candidate-model", "echo", "--llmswap-report", str(root / f"{name}.html")]
    return runs


def measure(n: int, rounds: int, against: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        here, other = Path(tmp) / "this", Path(tmp) / "against"
        here.mkdir()
        runs = {k: (lambda a=a: run(a, here)) for k, a in make_suites(here, n).items()}
        if against is not None:  # the same suites on the other checkout, recorded by it in its own folder
            other.mkdir()
            runs.update({f"{k} ({against.name})": (lambda a=a: run(a, other, tree=against))
                         for k, a in make_suites(other, n, against).items() if k != "bare"})
        for measure_once in runs.values():  # warm-up: .pyc files and the response store
            measure_once()
        times, mems = interleaved(runs, rounds)
    # Ratios per round (the runs of a round shared the machine's load), then their median.
    ratios = {k: statistics.median(t / b for t, b in zip(times[k], times["bare"])) for k in runs}
    for name in runs:
        print(f"| {n:,} | {name} | {statistics.median(times[name]):.2f} s | {ratios[name]:.2f}x | "
              f"{max(mems[name]):.0f} MiB |")
    if not statistical_supported():
        print(f"| {n:,} | statistical | not run: llm_contract has no min_pass_rate in this checkout | | |")


def profile(kind: str, n: int) -> None:
    """cProfile one run in-process: where the time goes, top 25 by cumulative time."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        args = make_suites(root, n)[kind]
        run(args, root)  # warm-up
        stats = root / "run.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *pytest_cmd(args)[1:]], cwd=root,
                       env=bench_env(), stdout=subprocess.DEVNULL, check=False)
        import pstats

        pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(25)
        pstats.Stats(str(stats)).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["per-case", "statistical"])
    parser.add_argument("--size", type=int, default=1000, help="cases for --profile")
    parser.add_argument("--against", type=Path, help="a checkout of another version to run side by side")
    opts = parser.parse_args()
    if opts.profile:
        profile(opts.profile, opts.size)
        return
    print(f"| cases | run | wall, median of {opts.rounds} | vs bare (median of per-round ratios) | peak RSS |")
    print("|---:|---|---:|---:|---:|")
    for n in opts.sizes:
        measure(n, opts.rounds, opts.against.resolve() if opts.against else None)


if __name__ == "__main__":
    main()
