"""Semantic fast path: scoring 10,000 candidate answers identical to their goldens, with and without semantic.

    env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_semantic_fastpath.py [--pairs 10000] [--rounds 5]

Each measurement is a fresh Python process (imports and peak RSS count, as in a pytest run), interleaved,
median of ``--rounds``:
  plain      exact and edit similarity of every (golden, candidate) pair, numpy loaded (the plugin's
             statistics load it in every run): a run without the semantic extra
  fastpath   the same, plus SemanticScorer.prepare_pairs over the run's pairs and a semantic similarity per
             pair, with an on-disk embedding cache: what the semantic extra adds when answers equal goldens
With ``--baseline`` a third process embeds every text as before the fast path (``prepare`` of all texts;
slow: it loads the encoder and embeds ``--pairs`` texts). Prints a Markdown table; exits 1 when fastpath /
plain exceeds 1.3 (the target of issue 11).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from measure import bench_env, timed

SCORE = """
import sys

import numpy  # the plugin's statistics load it in every run, with or without semantic
from pytest_llmswap.drift.text import edit_similarity, exact

mode, n, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pairs = [([f"Case {i}: the invoice was charged twice, please refund it."], f"Case {i}: the invoice was charged "
          "twice, please refund it.") for i in range(n)]
scores = [(exact(c, g[0]), edit_similarity(c, g[0])) for g, c in pairs]
if mode != "plain":
    from pytest_llmswap.drift.semantic import SemanticScorer

    scorer = SemanticScorer(cache_dir=cache)
    if mode == "fastpath":
        scorer.prepare_pairs(pairs)
    else:
        scorer.prepare(t for g, c in pairs for t in (*g, c))
    semantic = [scorer.similarity(c, g[0]) for g, c in pairs]
    assert semantic == [1.0] * n
    scorer.close()
print(len(scores))
"""


def run(mode: str, n: int, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one scoring process."""
    env = bench_env()
    env.setdefault("HF_HUB_OFFLINE", "1")
    return timed([sys.executable, "-c", SCORE, mode, str(n), str(cache)], env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", action="store_true", help="also time embedding every text (slow)")
    args = parser.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is unset for the measured processes", file=sys.stderr)
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "fastpath": []}
    with tempfile.TemporaryDirectory() as tmp:
        run("plain", 10, Path(tmp))  # warm-up: .pyc files and the page cache, not measured
        for r in range(args.rounds):
            # Alternate the order so a neighbour's load spike does not always hit the same mode.
            for mode in ("plain", "fastpath") if r % 2 == 0 else ("fastpath", "plain"):
                times[mode].append(run(mode, args.pairs, Path(tmp) / f"{mode}{r}"))
        if args.baseline:  # slow: once
            times["baseline"] = [run("baseline", args.pairs, Path(tmp) / "baseline")]
    wall = {m: statistics.median(w for w, _ in v) for m, v in times.items()}
    rss = {m: statistics.median(r for _, r in v) for m, v in times.items()}
    ratio = statistics.median(f[0] / p[0] for f, p in zip(times["fastpath"], times["plain"]))
    print(f"{args.pairs:,} candidate answers equal to their goldens, median of {args.rounds} interleaved runs\n")
    print("| run | wall | vs plain | peak RSS |")
    print("|---|---:|---:|---:|")
    labels = {"plain": "no semantic (exact + edit)", "fastpath": "semantic, fast path",
              "baseline": "semantic, every text embedded (before; one run)"}
    for mode in times:
        print(f"| {labels[mode]} | {wall[mode]:.2f} s | {wall[mode] / wall['plain']:.2f}x | {rss[mode]:.0f} MiB |")
    print(f"\nfastpath / plain, median of per-round ratios: {ratio:.2f}x")
    for mode, values in times.items():
        print(f"{mode} wall per run: " + ", ".join(f"{w:.2f}" for w, _ in values))
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
