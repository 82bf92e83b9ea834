"""Regenerate the verdict's calibration table in docs/cost.md (issue 16).

Every scenario of tests/calibration.py (the same simulation tests/test_calibration.py asserts on), plus the power
of the verdict at two and three times the maximum broken-case rate. Writes the table between the
``calibration-table`` markers of docs/cost.md and prints it.

    .venv/bin/python benchmarks/bench_verdict_calibration.py            # about a minute on 2 cores
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from calibration import SETTINGS, Outcome, grid, simulate  # noqa: E402


def row(o: Outcome, power: dict[float, Outcome | None]) -> str:
    s = o.scenario
    noisy = f"{s.noise:.0%}" if s.noise else "none"
    at_max = "—" if s.candidate == "twin" else f"{o.drop_in:.1%}"
    twin = f"{o.flagged:.1%}" if s.candidate == "twin" else "—"
    shown = " / ".join("—" if p is None else f"{p.flagged:.0%}" for p in power.values())
    return (f"| {s.k} | {s.pass_rate:.0%} | {noisy} | {s.n:,} | {s.candidate} | {o.true_rate:.1%} | "
            f"{o.coverage:.1%} | {at_max} | {twin} | {shown} |")


def main() -> None:
    start = time.perf_counter()
    maximum = SETTINGS.max_regression_rate
    lines = ["| K | incumbent passes | noise | cases | candidate | true rate | coverage | drop-in at the max | "
             "twin flagged | flagged at 2x / 3x the max |", "|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in grid():
        outcome = simulate(scenario)
        if outcome is None:
            continue
        power = {m: None if scenario.candidate == "twin" else simulate(replace(scenario, rate=m * maximum),
                                                                        suites=300)
                 for m in (2, 3)}
        lines.append(row(outcome, power))
    table = "\n".join(lines)
    doc = ROOT / "docs" / "cost.md"
    text = doc.read_text(encoding="utf-8")
    text = re.sub(r"(<!-- calibration-table -->\n).*?(<!-- /calibration-table -->)",
                  lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
    doc.write_text(text, encoding="utf-8")
    print(table)
    print(f"\n{len(lines) - 2} scenarios in {time.perf_counter() - start:.0f} s; written to {doc}")


if __name__ == "__main__":
    main()
