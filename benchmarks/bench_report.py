"""Render the HTML and Markdown reports for 10,000 synthetic case rows: time (median of 3) and size.

Run: ``python benchmarks/bench_report.py [N_CASES]`` (unset PYTHONDONTWRITEBYTECODE, as users keep .pyc files).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from pytest_llmswap.report.html import render_html
from pytest_llmswap.report.markdown import render_markdown
from pytest_llmswap.synthetic import synthetic_results


def median_seconds(fn: Callable[[], str], repeats: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(n_cases: int = 10_000) -> None:
    results = synthetic_results(n_cases)
    rows = [("HTML", *median_seconds(lambda: render_html(results))),
            ("Markdown", *median_seconds(lambda: render_markdown(results)))]
    print(f"{len(results.cases):,} case rows, {len(results.candidates)} candidates, {len(results.contracts)} contracts")
    print("| report | render time (median of 3) | size |")
    print("|---|---|---|")
    for name, seconds, text in rows:
        print(f"| {name} | {seconds:.2f} s | {len(text.encode('utf-8')) / 1024:,.0f} KiB |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
