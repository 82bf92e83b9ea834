"""The ``llmswap`` command: re-render reports, merge sharded results, export goldens, re-measure GPU-hour throughput.

Only argparse and json are imported at start; each subcommand imports what it needs, so ``llmswap --help``
stays instant and nothing here pulls in litellm, numpy or torch unless the subcommand needs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .files import OutputWriteError, write_text


class CliError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


def _read_json(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None


def _load_results(path: str) -> Any:
    from .results import ResultsFormatError, RunResults

    try:
        return RunResults.from_dict(_read_json(path), source=path)
    except ResultsFormatError as exc:
        raise CliError(str(exc)) from None


def _write(path: str | Path, text: str) -> None:
    try:
        write_text(Path(path), text)  # the plugin's writer: atomic, and a lone surrogate is never an error
    except OutputWriteError as exc:
        raise CliError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the HTML (and optionally Markdown) report from a saved results file."""
    from .report.html import render_html
    from .report.markdown import render_markdown

    results = _load_results(args.results)
    out = args.output or str(Path(args.results).with_suffix(".html"))
    _write(out, render_html(results))
    print(f"wrote {out}", file=sys.stderr)
    if args.markdown:
        _write(args.markdown, render_markdown(results))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


def merge_results(paths: Sequence[str]) -> Any:
    """Join shard results into one run, summaries recomputed; :class:`CliError` on mismatched shards."""
    from .verdict.aggregate import summarize  # lazily: it pulls in numpy
    from .results import ResultsFormatError
    from .results import merge_results as merge

    if not paths:
        raise CliError("no shard results to merge")
    raw = [(p, _read_json(p)) for p in paths]
    versions = {p: d.get("format_version") if isinstance(d, dict) else None for p, d in raw}
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{p}: {v}" for p, v in versions.items())
        raise CliError(f"results files have different format versions ({listed}); re-run the older shards")
    try:
        merged = merge([(p, _load_results(p)) for p in paths])
    except ResultsFormatError as exc:
        raise CliError(str(exc)) from None
    merged.summaries = summarize(merged)
    return merged


def cmd_merge(args: argparse.Namespace) -> int:
    """Write the merged results of several shards (with ``--missing-ok``, of those that exist, naming the rest)."""
    paths = args.results
    if args.missing_ok:
        missing = [p for p in paths if not Path(p).exists()]
        paths = [p for p in paths if p not in missing]
        for path in missing:
            print(f"llmswap: missing shard: {path}", file=sys.stderr)
        if not paths:
            raise CliError(f"every shard is missing ({', '.join(missing)})")
    merged = merge_results(paths)
    _write(args.output, json.dumps(merged.to_dict(), separators=(",", ":"), ensure_ascii=False))
    print(f"merged {len(paths)} files, {len(merged.cases)} case rows -> {args.output}", file=sys.stderr)
    return 0


def golden_files(root: Path) -> list[Path]:
    """Every ``__llm_goldens__/*.json`` under ``root`` (or ``root`` itself when it is one file), sorted."""
    from .golden import GOLDEN_DIR

    if root.is_file():
        return [root]
    if not root.is_dir():
        raise CliError(f"{root}: no such directory")
    return sorted(p for p in root.rglob("*.json") if p.parent.name == GOLDEN_DIR)


def chat_examples(root: Path, passed_only: bool = False) -> list[dict[str, Any]]:
    """One chat-format training example per distinct conversation: its messages plus a golden answer.

    A contract with a prompt gives one per sample (the rendered messages and the answer); an application-mode
    contract one per recorded call of each sample (the call's messages, tools and answer with its tool calls).
    Identical conversations (e.g. K samples of a deterministic model) are one example; ``metadata`` names the
    contract and case it came from, the call where it is one of an application's, and how many samples it
    stands for.
    """
    from .golden import GoldenFormatError, load_golden_file

    files = golden_files(root)
    if not files:
        raise CliError(f"no golden files (__llm_goldens__/*.json) under {root}")
    examples: dict[str, dict[str, Any]] = {}
    for path in files:
        try:
            contracts = load_golden_file(path)
        except GoldenFormatError as exc:
            raise CliError(str(exc)) from None
        # The test module beside the golden folder, relative to the root searched: pytest's node id from there.
        module = path.parent.parent / f"{path.stem}.py"
        prefix = module.relative_to(root).as_posix() if root.is_dir() else module.name
        for key in sorted(contracts):
            for case_id, case in sorted(contracts[key].items()):
                # Samples recorded before checks ran carry no "passed": they are not known to pass.
                samples = [s for s in case.samples if not passed_only or s.get("passed") is True]
                for row, call in (r for s in samples for r in _conversations(case.messages, s)):
                    text = json.dumps(row, ensure_ascii=False, sort_keys=True)
                    if text in examples:
                        examples[text]["metadata"]["samples"] += 1
                        continue
                    where = {"contract": f"{prefix}::{key}", "case_id": case_id}
                    examples[text] = {**row, "metadata": {**where, **({"call": call} if call else {}), "samples": 1}}
    return list(examples.values())


def _conversations(messages: list[list[str]], sample: dict[str, Any]) -> list[tuple[dict[str, Any], int | None]]:
    """The chat rows of one golden sample with the number of the application call each comes from (None for
    a contract's own prompt): ``messages`` and, where the call offered tools, ``tools``."""
    if "calls" not in sample:
        prompt = [{"role": role, "content": content} for role, content in messages]
        return [({"messages": prompt + [{"role": "assistant", "content": sample["text"]}]}, None)]
    rows = []
    for number, call in enumerate(sample["calls"], 1):
        request, response = call.get("request") or {}, call.get("response") or {}
        answer: dict[str, Any] = {"role": "assistant", "content": response.get("text") or None}
        if response.get("tool_calls"):
            answer["tool_calls"] = response["tool_calls"]
        row: dict[str, Any] = {"messages": [*request.get("messages", ()), answer]}
        if request.get("tools"):
            row["tools"] = request["tools"]
        rows.append((row, number))
    return rows


def cmd_export(args: argparse.Namespace) -> int:
    """Write golden samples as a fine-tuning dataset."""
    examples = chat_examples(Path(args.goldens), passed_only=args.passed_only)
    _write(args.output, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    samples = sum(e["metadata"]["samples"] for e in examples)
    print(f"wrote {len(examples)} example(s) ({samples} golden sample(s)) to {args.output}", file=sys.stderr)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure again the throughput of the GPU-hour-priced models a pytest run names, on its prompts, and store it.

    The run's own arguments decide the models (``--incumbent-model``, ``--candidate-model``) and the cache
    folder; its calls come from the response cache where stored. No test runs and no report is written.
    """
    import pytest

    return int(pytest.main([*args.pytest_args, "--llmswap-recalibrate", "--llmswap-calibrate-only"]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmswap", description="pytest-llmswap reports, shard merging and exports.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("report", help="re-render the drift report from a saved results JSON")
    p.add_argument("results", metavar="RESULTS.json")
    p.add_argument("-o", "--output", metavar="PATH", help="HTML file (default: RESULTS with .html)")
    p.add_argument("--markdown", metavar="PATH", help="also write the pull-request Markdown summary")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("merge", help="join the results of CI shards into one results JSON")
    p.add_argument("results", nargs="+", metavar="RESULTS.json")
    p.add_argument("-o", "--output", required=True, metavar="PATH")
    p.add_argument("--missing-ok", action="store_true",
                   help="merge the shards that exist and name the missing ones on stderr (a crashed CI shard)")
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser("export", help="write golden samples as a fine-tuning dataset")
    p.add_argument("--goldens", required=True, metavar="DIR", help="folder searched for __llm_goldens__/*.json")
    p.add_argument("--format", choices=["chat-jsonl"], default="chat-jsonl")
    p.add_argument("-o", "--output", required=True, metavar="PATH")
    p.add_argument("--passed-only", action="store_true", help="only samples on which the contract's checks passed")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("calibrate", help="re-measure the throughput that prices GPU-hour models (takes pytest's "
                       "arguments, e.g. llmswap calibrate examples --incumbent-model teacher --candidate-model student)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="the arguments of the pytest run to calibrate")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmswap`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"llmswap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
