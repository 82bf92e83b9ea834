"""Semantic scoring of N output pairs: SemanticScorer against sentence-transformers called directly.

    python benchmarks/bench_semantic.py [--pairs 2000] [--repeats 5]

Run with PYTHONDONTWRITEBYTECODE unset (users keep .pyc files). Each repeat scores the same pairs:
"direct" encodes both sides with the encoder in one call each and takes row-wise cosines; "scorer"
runs a fresh SemanticScorer (cold disk cache) that embeds every distinct text in one batched call.
Then a fresh scorer on the warm disk cache scores the pairs again and must embed nothing. Both paths
share one loaded encoder, so model loading is not timed. The two paths alternate which runs first;
wall and CPU time are both reported, with every run's wall time, because on a shared machine a
neighbour's load shifts both (torch's waiting threads spin and count as CPU). Prints a Markdown
table; exits 1 when the median of the per-repeat scorer/direct ratios exceeds 1.1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pytest_llmswap.drift import semantic  # noqa: E402
from pytest_llmswap.drift.semantic import SemanticScorer  # noqa: E402

SUBJECTS = ["The invoice", "My order", "The refund", "Your app", "The login page", "The monthly report",
            "Our API key", "The shipment", "The password reset email", "The dashboard"]
PROBLEMS = ["was charged twice", "never arrived", "shows the wrong total", "crashes on start",
            "times out after a minute", "is missing last week's data", "stopped working yesterday",
            "was sent to the wrong address", "cannot be downloaded", "looks empty"]
ENDINGS = ["please fix it.", "what should I do?", "can you help?", "this is urgent.", "thanks in advance.",
           "I tried twice already.", "it worked last month.", "my manager is asking.", "see the attached file.",
           "reply when you can."]


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Distinct golden/candidate answers, like a suite's outputs (numbered so no text repeats)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        golden = f"Case {i}: {rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)}, {rng.choice(ENDINGS)}"
        candidate = f"Ticket {i}: {rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)}; {rng.choice(ENDINGS)}"
        pairs.append((golden, candidate))
    return pairs


def direct(encoder: object, pairs: list[tuple[str, str]]) -> np.ndarray:
    a = encoder.encode([p[0] for p in pairs], batch_size=64, convert_to_numpy=True,  # type: ignore[attr-defined]
                       show_progress_bar=False)
    b = encoder.encode([p[1] for p in pairs], batch_size=64, convert_to_numpy=True,  # type: ignore[attr-defined]
                       show_progress_bar=False)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set; unset it for numbers users see", file=sys.stderr)

    pairs = make_pairs(args.pairs)
    t0 = time.perf_counter()
    encoder = semantic._load_encoder(semantic.DEFAULT_MODEL, "cpu")
    load_s = time.perf_counter() - t0
    # Both paths use the already loaded encoder: only scoring is timed.
    semantic._load_encoder = lambda model, device: encoder  # type: ignore[assignment]
    direct(encoder, pairs[:64])  # warm-up: first-call allocations are not what we measure

    times: dict[str, list[tuple[float, float]]] = {"direct": [], "scorer": [], "warm": []}

    def timed(name: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cache = Path(tmp) / f"run{r}"
            scorer = SemanticScorer(cache_dir=cache)
            # Alternate which path runs first, so a neighbour's load spike does not always hit the same one.
            if r % 2:
                got = timed("scorer", lambda: scorer.similarities(pairs))
                expected = timed("direct", lambda: direct(encoder, pairs))
            else:
                expected = timed("direct", lambda: direct(encoder, pairs))
                got = timed("scorer", lambda: scorer.similarities(pairs))
            scorer.close()
            assert scorer.embedded_count == 2 * len(pairs)
            assert np.allclose(got, expected, atol=1e-5), "scorer and direct disagree"

            warm = SemanticScorer(cache_dir=cache)
            warm_got = timed("warm", lambda: warm.similarities(pairs))
            assert warm.embedded_count == 0 and warm._encoder is None
            assert np.allclose(warm_got, got, atol=1e-6)
            warm.close()

    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    # The two paths of one repeat run back to back, under about the same load from neighbours: the
    # median of their per-repeat ratios is the figure that survives a busy shared machine.
    paired = statistics.median(sc[0] / di[0] for sc, di in zip(times["scorer"], times["direct"]))
    print(f"semantic scoring of {len(pairs)} pairs ({2 * len(pairs)} texts), median of {args.repeats} runs; "
          f"encoder load {load_s:.2f} s (not timed below)\n")
    print("| path | wall (s) | CPU (s) | texts embedded | wall vs direct | CPU vs direct |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("sentence-transformers directly (encode both sides, cosine)", "direct", 2 * len(pairs)),
            ("SemanticScorer, cold disk cache", "scorer", 2 * len(pairs)),
            ("SemanticScorer, warm disk cache (fresh scorer)", "warm", 0)]
    for label, key, embedded in rows:
        print(f"| {label} | {wall[key]:.3f} | {cpu[key]:.3f} | {embedded} | {wall[key] / wall['direct']:.3f}x "
              f"| {cpu[key] / cpu['direct']:.3f}x |")
    print(f"\nscorer / direct, median of per-repeat wall ratios: {paired:.3f}x")
    for key in times:
        print(f"{key} wall per run: " + ", ".join(f"{w:.2f}" for w, _ in times[key]))
    return 0 if paired <= 1.1 else 1

if __name__ == "__main__":
    sys.exit(main())
