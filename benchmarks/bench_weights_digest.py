"""A local checkpoint's weights digest in a fresh process: hashing the weights, against reading the stored hash.

Every run and every xdist worker parses its model specs, and an ``hf:`` spec of a local folder is named by the
digest of its weight files (pytest_llmswap/models/weights.py). A checkpoint of SIZE MiB of random bytes (one
``model.safetensors``) is digested by a fresh Python process with an empty digest store (what the first run
pays), then with the store that run left (what every later run and worker pays); interleaved, median of ROUNDS.
The file is read through the page cache after the first round: a cold disk makes the first figure larger.

Run: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_weights_digest.py [--size 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from measure import bench_env, interleaved, timed

DIGEST = "import sys; from pathlib import Path; from pytest_llmswap.models.weights import weights_digest; " \
         "print(weights_digest(Path(sys.argv[1])))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB of weights")
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "checkpoint"
        folder.mkdir()
        with open(folder / "model.safetensors", "wb") as fh:
            for _ in range(opts.size):
                fh.write(os.urandom(1 << 20))
        cmd = [sys.executable, "-c", DIGEST, str(folder)]
        empty, stored = root / "empty", root / "stored"

        def first() -> tuple[float, float]:
            shutil.rmtree(empty, ignore_errors=True)
            return timed(cmd, env={**bench_env(), "LLMSWAP_CACHE_HOME": str(empty)})

        timed(cmd, env={**bench_env(), "LLMSWAP_CACHE_HOME": str(stored)})  # fills the store later runs read
        times, _ = interleaved({"first run (hashes the weights)": first,
                                "later run (the stored hash)": lambda: timed(
                                    cmd, env={**bench_env(), "LLMSWAP_CACHE_HOME": str(stored)})}, opts.rounds)
    print(f"| {opts.size:,} MiB checkpoint, fresh process | wall, median of {opts.rounds} |")
    print("|---|---:|")
    for name, walls in times.items():
        print(f"| {name} | {statistics.median(walls):.2f} s |")


if __name__ == "__main__":
    main()
