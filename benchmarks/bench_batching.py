"""Batched vs one-at-a-time generation with HFBackend on the example teacher, and memory per loaded model.

    HF_HUB_OFFLINE=1 python benchmarks/bench_batching.py

Greedy answers to the same 64 prompts (the example suite's cases, repeated to 64), median of 3 runs per setting;
tokens/s counts generated tokens (EOS included). Memory: the process's RSS growth while each variant loads, in a
fresh process per variant so one load does not hide inside another's freed pages.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hf_fixtures import STUDENT, TEACHER, hf_spec, load_cases, requests_for  # noqa: E402

from pytest_llmswap.models.hf import HFBackend  # noqa: E402

N_PROMPTS = 64
RUNS = 3


def throughput(batch_size: int) -> tuple[float, float]:
    """Median tokens/s and median wall seconds for the 64 prompts at ``batch_size``."""
    backend = HFBackend(hf_spec(batch_size=str(batch_size)))
    cases = (load_cases() * 2)[:N_PROMPTS]
    rates, walls = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        answers = backend.complete(requests_for(backend.spec, cases))
        wall = time.perf_counter() - start
        rates.append(sum(a.usage.output_tokens for a in answers) / wall)
        walls.append(wall)
    return statistics.median(rates), statistics.median(walls)


def load_memory(folder: str, options: dict[str, str]) -> None:
    """Child process: print the RSS growth (MiB) of importing torch+transformers and of loading one model."""
    import psutil

    proc = psutil.Process()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    before = proc.memory_info().rss
    backend = HFBackend(hf_spec(folder, **options))
    backend.load()
    model = backend._loaded.model
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"rss_mib": (proc.memory_info().rss - before) / 2**20, "param_kib": params / 1024}))


def main() -> None:
    import torch

    # One thread: a model this small gains nothing from more, and on a shared machine extra threads spin-wait.
    torch.set_num_threads(1)
    print(f"{N_PROMPTS} prompts, greedy, median of {RUNS} runs, torch threads {torch.get_num_threads()}\n")
    print("| setting | wall s | tokens/s | speed-up |")
    print("|---|---|---|---|")
    base_rate = None
    for size in (1, 16, 64):
        rate, wall = throughput(size)
        base_rate = base_rate or rate
        print(f"| batch_size={size} | {wall:.2f} | {rate:.0f} | {rate / base_rate:.1f}x |", flush=True)

    print("\n| model | parameters KiB | RSS growth on load MiB |")
    print("|---|---|---|")
    variants = [("teacher", TEACHER, {}), ("teacher int8", TEACHER, {"quant": "int8"}),
                ("teacher bfloat16", TEACHER, {"dtype": "bfloat16"}), ("student", STUDENT, {})]
    for name, folder, options in variants:
        out = subprocess.run([sys.executable, __file__, "--load-memory", str(folder), json.dumps(options)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        mem = json.loads(out)
        print(f"| {name} | {mem['param_kib']:.0f} | {mem['rss_mib']:.1f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--load-memory":
        load_memory(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
