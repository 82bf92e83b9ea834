"""1,000 cases replayed by pytest-llmswap and by promptfoo: the same prompts, checks and echo model.

promptfoo is not a dependency of this project: install it once outside it (``npm install promptfoo`` in a scratch
folder, about 1.4 GB with its dependencies) and pass its executable. Each run is a fresh process, interleaved
round by round with bare pytest and the plugin's two modes (the suites of ``bench_scale.py``); promptfoo runs
its built-in ``echo`` provider with the same three checks per case (``starts-with``, ``contains``, a JavaScript
length check), with telemetry, update checks and sharing off, writes no results database (``--no-write``) and
writes an HTML file, as the plugin writes its report.

Run: env -u PYTHONDONTWRITEBYTECODE python benchmarks/bench_promptfoo.py --promptfoo PATH [--cases 1000]
     [--rounds 5] [--against DIR]   (also the plugin's runs on the checkout in DIR, as in bench_scale.py)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench_scale import make_suites, run
from measure import bench_env, interleaved, timed


def promptfoo_config(n: int) -> dict[str, object]:
    """N cases of ``ticket {{n}}`` on promptfoo's echo provider, with the plugin suite's three checks."""
    tests = [{"vars": {"n": i}, "assert": [{"type": "starts-with", "value": "ticket"},
                                          {"type": "contains", "value": str(i)},
                                          {"type": "javascript", "value": "output.length < 100"}]}
             for i in range(n)]
    return {"description": "bench", "prompts": ["ticket {{n}}"], "providers": ["echo"], "tests": tests}


def promptfoo_env(home: Path) -> dict[str, str]:
    """Offline and quiet: no telemetry, update check or sharing; its home (cache, config) in a scratch folder."""
    return {**bench_env(), "HOME": str(home), "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_DISABLE_SHARING": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promptfoo", type=Path, required=True, help="the promptfoo executable")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="a checkout of another version to run side by side")
    opts = parser.parse_args()
    if not os.access(opts.promptfoo, os.X_OK):
        raise SystemExit(f"{opts.promptfoo} is not an executable: install promptfoo (npm install promptfoo) and pass "
                         "node_modules/.bin/promptfoo")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "plugin").mkdir()
        (root / "promptfoo" / "home").mkdir(parents=True)
        suites = make_suites(root / "plugin", opts.cases)
        config = root / "promptfoo" / "promptfooconfig.json"
        config.write_text(json.dumps(promptfoo_config(opts.cases)))
        cmd = [str(opts.promptfoo), "eval", "-c", str(config), "--no-write", "--no-table", "--no-progress-bar",
               "-o", str(root / "promptfoo" / "out.html")]
        env = promptfoo_env(root / "promptfoo" / "home")
        runs = {name: (lambda a=args: run(a, root / "plugin")) for name, args in suites.items()}
        if opts.against is not None:
            against = opts.against.resolve()
            (root / "against").mkdir()
            runs.update({f"{name} ({against.name})": (lambda a=args: run(a, root / "against", tree=against))
                         for name, args in make_suites(root / "against", opts.cases, against).items()
                         if name != "bare"})
        runs["promptfoo"] = lambda: timed(cmd, root / "promptfoo", env=env)
        for measure_once in runs.values():  # warm-up: .pyc files, the response store, node's compile cache
            measure_once()
        times, mems = interleaved(runs, opts.rounds)
    print(f"| run, {opts.cases:,} cases | wall, median of {opts.rounds} | promptfoo's time over this one "
          "(median of per-round ratios) | peak RSS |")
    print("|---|---:|---:|---:|")
    for name in runs:
        ratio = statistics.median(p / t for p, t in zip(times["promptfoo"], times[name]))
        print(f"| {name} | {statistics.median(times[name]):.2f} s | {ratio:.2f}x | {max(mems[name]):.0f} MiB |")


if __name__ == "__main__":
    main()
