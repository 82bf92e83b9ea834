"""``edit`` similarity on long outputs: seconds per score, and how far a chunked score is from the exact one.

    python benchmarks/bench_edit.py [--sizes 100000,1000000] [--rounds 3] [--exact-up-to 200000]

Three pairs per size (10-word vocabulary prose): ``few`` (0.05% of the characters edited: inside the band, exact),
``spread`` (10% edited anywhere) and ``unrelated`` (two independent texts). Prints a Markdown table of the median
time of ``edit_similarity`` and, up to ``--exact-up-to`` characters, the exact (quadratic) score beside it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rapidfuzz.distance import Levenshtein  # noqa: E402

from pytest_llmswap.drift.text import edit_similarity  # noqa: E402
from test_edit_long import prose, spread_edits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exact-up-to", type=int, default=200_000)
    args = parser.parse_args()
    print("| chars | pair | edit | seconds (median) | exact score | exact seconds |\n|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        rng = random.Random(size)
        a = prose(rng, size)
        pairs = {"few": spread_edits(rng, a, 0.0005), "spread": spread_edits(rng, a, 0.1), "unrelated": prose(rng, size)}
        for name, b in pairs.items():
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                score = edit_similarity(a, b)
                times.append(time.perf_counter() - start)
            exact, exact_s = "", ""
            if size <= args.exact_up_to:
                start = time.perf_counter()
                exact = f"{Levenshtein.normalized_similarity(a, b):.4f}"
                exact_s = f"{time.perf_counter() - start:.2f}"
            print(f"| {size:,} | {name} | {score:.4f} | {statistics.median(times):.2f} | {exact} | {exact_s} |")


if __name__ == "__main__":
    main()
