"""The end of a run: aggregate the results, write the requested reports, summarise for the terminal.

Nothing here may end a run in a traceback: each output is written on its own, and a failure to write one is
one line naming the path and the reason, while the others are still written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import summarize
from .files import write_text
from .results import RunResults
from .session import LlmSwapSession
from .summaries import CandidateSummary, Switching, Verdict


@dataclass
class RunReport:
    """What the session wrote, what it could not write, and the lines of the terminal summary."""

    results: RunResults
    written: list[tuple[str, Path]] = field(default_factory=list)
    recorded: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        s = self.results.summaries
        lines: list[str] = []
        if s is not None:
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
    failed = f", {c.failed_calls} failed call(s)" if c.failed_calls else ""
    lines = [f"{name}: {v.headline}",
             f"  {c.cases} cases: {c.checks_passed} passed checks ({_pct(c.pass_rate)}; incumbent "
             f"{_pct(c.golden_pass_rate)}){failed}, {c.regressions:g} regressions, {c.improvements:g} improvements, "
             f"{c.exceeded} beyond tolerance"]
    means = [f"{m} {c.metrics[m].mean:.3f}" for m in ("edit", "fields", "semantic")
             if m in c.metrics and c.metrics[m].mean is not None]
    lines.append(f"  mean {', '.join(means) or 'n/a'}; {c.usage.total_tokens} tokens; cost per 1k calls "
                 f"{_money(sw.cost_per_1k_calls)}; monthly {_money(sw.candidate_monthly_usd)} vs incumbent "
                 f"{_money(sw.incumbent_monthly_usd)}; rework {_money(sw.rework_usd)}")
    return lines


def write_reports(state: LlmSwapSession) -> RunReport:
    """Aggregate the session's results and write the HTML, JSON and Markdown files it was asked for."""
    results = state.results_model()
    results.summaries = summarize(results)
    report = RunReport(results, recorded=list(state.recorded))
    options = state.options
    if options.report_json:
        _write(report, "JSON", options.report_json,
               lambda: json.dumps(results.to_dict(), indent=1, sort_keys=True) + "\n")
    if options.report_html and results.summaries.candidates:
        from .report.html import render_html

        _write(report, "HTML", options.report_html, lambda: render_html(results))
    if options.report_markdown:
        from .report.markdown import append_step_summary, render_markdown

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


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:.3g}"
