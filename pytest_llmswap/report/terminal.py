"""A run's reports: aggregate the results, write the requested files, summarise for the terminal.

Nothing here may end a run in a traceback: each output is written on its own, and a failure to write one is
one line naming the path and the reason, while the others are still written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..verdict.aggregate import summarize
from ..files import write_text
from ..results import CaseResult, RunResults
from ..run.keys import ItemKey, RunOptions
from ..verdict.summaries import CandidateSummary, Switching, Verdict
from . import view


@dataclass
class RunReport:
    """What the session wrote, what it could not write, and the lines of the terminal summary."""

    results: RunResults
    written: list[tuple[str, Path]] = field(default_factory=list)
    recorded: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        """The llmswap section of pytest's terminal summary: the decision first, then each candidate."""
        from .view import candidate_views, overall_line

        s = self.results.summaries
        lines: list[str] = []
        if s is not None and s.candidates:
            lines.append(overall_line(self.results, candidate_views(self.results)))
            for name, c in s.candidates.items():
                lines.extend(_candidate_lines(name, c, s.switching[name], s.verdicts[name]))
        if self.results.stale_goldens:
            lines.append(f"stale goldens (prompt changed; re-record with --llmswap-record new): "
                         f"{len(self.results.stale_goldens)}")
            lines.extend(f"  {g}" for g in self.results.stale_goldens[:20])
        if self.results.unused_goldens:
            lines.append(f"unused goldens (no collected case uses them): {len(self.results.unused_goldens)}")
            lines.extend(f"  {g}" for g in self.results.unused_goldens[:20])
        lines.extend(f"recorded goldens: {p}" for p in self.recorded)
        lines.extend(f"{kind} report: {p}" for kind, p in self.written)
        lines.extend(f"ERROR {e}" for e in self.errors)
        return lines


def _candidate_lines(name: str, c: CandidateSummary, sw: Switching, v: Verdict) -> list[str]:
    """A candidate's verdict, its pass rate (the checks alone labelled apart), failed calls and cost."""
    from ..verdict.figures import plural
    from .view import money, months, pct

    failed = f"; {plural(c.failed_calls, 'failed call')}, first: {c.first_error}" if c.failed_calls else ""
    delta = "" if sw.monthly_delta_usd is None else \
        f" ({'+' if sw.monthly_delta_usd > 0 else ''}{money(sw.monthly_delta_usd)} a month)"
    return [f"{name}: {v.headline}",
            f"  pass rate {pct(c.pass_rate)}: {c.passed} of {plural(c.cases, 'case')} passed (incumbent "
            f"{pct(c.golden_pass_rate)}); checks passed {c.checks_passed}, {c.exceeded} beyond tolerance, "
            f"{plural(c.regressions, 'regression')}, {plural(c.improvements, 'improvement')}{failed}",
            *([f"  {v.measured_rework}"] if v.measured_rework else []),
            f"  cost: {money(sw.cost_per_1k_calls)} per 1,000 calls, monthly {money(sw.candidate_monthly_usd)} vs "
            f"incumbent {money(sw.incumbent_monthly_usd)}{delta}; rework {money(sw.rework_usd)}"
            f"{' (your estimates, the adaptation included)' if c.adaptation else ''}; break-even {months(sw)}"]


#: Failed contract items that pytest's short test summary lists one by one when the user did not ask for it
#: with ``-r``; more fail (a large run) and they are summarised per model and contract (:func:`failed_items_lines`).
FAILED_LISTED = 10


@dataclass(frozen=True)
class ItemRun:
    """One contract item as pytest reported it: its model row (``incumbent`` for record and replay rows), its
    contract (the node id without the parameters) and whether it failed."""

    model: str
    contract: str
    failed: bool


def failed_items_lines(items: list[ItemRun], results: RunResults | None, left_out: int) -> list[str]:
    """Failed contract items per model: how many of its items failed and, per contract, why its cases did.

    ``left_out`` is the number of ``FAILED`` lines taken out of pytest's short test summary; the last line says
    how to get them back.
    """
    from ..verdict.figures import plural

    order = ["incumbent"] + [m.name for m in results.candidates] if results else ["incumbent"]
    models = sorted({i.model for i in items}, key=lambda m: (order.index(m) if m in order else len(order), m))
    reasons = _failure_reasons(results)
    lines = []
    for model in models:
        mine = [i for i in items if i.model == model]
        failed = [i for i in mine if i.failed]
        if not failed:
            continue
        contracts = sorted({i.contract for i in failed})
        parts = []
        for contract in contracts:
            count = sum(i.contract == contract for i in failed)
            counted = reasons.get((model, contract), {})
            why = ", ".join(plural(n, word, _REASONS[word]) for word, n in counted.items())
            total = sum(i.contract == contract for i in mine)
            prefix = f"{contract}: {count:,} of {total:,}" if len(contracts) > 1 else contract
            parts.append(f"{prefix}{': ' + why if why else ''}")
        head = f"{model}: {len(failed):,} of {plural(len(mine), 'item')} failed"
        if len(contracts) == 1:
            lines.append(f"{head} ({parts[0]})")
        else:
            lines.append(head)
            lines.extend(f"  {p}" for p in parts)
    lines.append(f"{plural(left_out, 'FAILED line')} left out of the short test summary: pytest -rf lists each "
                 "failed item; the HTML report and the JSON results hold every case")
    return lines


#: Why a case failed, in the terminal's words, singular and plural (in the order a reader should fix them).
_REASONS = {"failed call": "failed calls", "failed check": "failed checks", "beyond tolerance": "beyond tolerance",
            "not judged": "not judged"}
#: The report's outcome of a failed case (:func:`.view.outcome`) in those words; any other outcome of a case that
#: did not pass is a failed check (an incumbent row's checks, which that outcome does not judge).
_REASON_OF_OUTCOME = {"failed call": "failed call", "error": "not judged", "regression": "failed check",
                      "failed": "failed check", "exceeded": "beyond tolerance"}


def _failure_reasons(results: RunResults | None) -> dict[tuple[str, str], dict[str, int]]:
    """Per (model, contract), the failed cases counted by reason, in :data:`_REASONS` order."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for case in results.cases if results else ():
        if case.passed:
            continue
        why = _REASON_OF_OUTCOME.get(view.outcome(case), "failed check")
        bucket = counts.setdefault((case.candidate or "incumbent", case.contract), dict.fromkeys(_REASONS, 0))
        bucket[why] += 1
    return {key: {w: n for w, n in bucket.items() if n} for key, bucket in counts.items()}


def junit_properties(key: ItemKey, cases: list[CaseResult]) -> list[tuple[str, object]]:
    """What a junit XML consumer sees of an item (``record_property``): its model, flip and drift metrics.

    A statistical item (many cases) gets its counts instead of one case's metrics.
    """
    props: list[tuple[str, object]] = [("llmswap_model", key.model or "incumbent")]
    if len(cases) == 1:
        case = cases[0]
        props += [("llmswap_case", case.case_id), ("llmswap_flip", case.flip or "none")]
        props += [(f"llmswap_{name}", round(value, 6)) for name, value in sorted(case.metrics.items())
                  if value is not None]
        if case.call_error:
            props.append(("llmswap_failed_call", case.call_error))
    elif cases:
        props += [("llmswap_cases", len(cases)), ("llmswap_cases_passed", sum(c.passed for c in cases)),
                  ("llmswap_regressions", sum(c.flip == "regression" for c in cases))]
    return props


def write_reports(results: RunResults, options: RunOptions, recorded: list[Path]) -> RunReport:
    """Aggregate a run's results and write the HTML, JSON and Markdown files ``options`` ask for."""
    results.summaries = summarize(results)
    report = RunReport(results, recorded=list(recorded))
    if options.report_json:
        _write(report, "JSON", options.report_json,
               lambda: json.dumps(results.to_dict(logprobs=options.report_logprobs), separators=(",", ":"),
                                  sort_keys=True) + "\n")
    if options.report_html and results.summaries.candidates:
        from .html import render_html

        _write(report, "HTML", options.report_html, lambda: render_html(results))
    if options.report_markdown:
        from .markdown import append_step_summary, render_markdown

        text = render_markdown(results)
        _write(report, "Markdown", options.report_markdown, lambda: text)
        try:
            if append_step_summary(text):
                report.written.append(("Markdown", Path(os.environ["GITHUB_STEP_SUMMARY"])))
        except OSError as exc:
            report.errors.append(f"cannot append to $GITHUB_STEP_SUMMARY: {exc}")
    return report


def _write(report: RunReport, kind: str, path: Path, render: Callable[[], str]) -> None:
    try:
        write_text(path, render())
    except OSError as exc:  # OutputWriteError already names the path and the reason in one line
        report.errors.append(str(exc).splitlines()[0])
    else:
        report.written.append((kind, path))
