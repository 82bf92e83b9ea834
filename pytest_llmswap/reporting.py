"""The end of a run: aggregate the results, write the requested reports, summarise for the terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import summarize
from .golden import atomic_write
from .report.results import RunResults
from .session import LlmSwapSession


@dataclass
class RunReport:
    """What the session wrote, and the lines of the terminal summary."""

    results: RunResults
    written: list[tuple[str, Path]] = field(default_factory=list)
    recorded: list[Path] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines: list[str] = []
        s = self.results.summaries
        for name, c in s.get("candidates", {}).items():
            lines.append(f"candidate {name}: {c['cases']} cases, pass rate {_pct(c['pass_rate'])} "
                         f"(incumbent {_pct(c['golden_pass_rate'])}), {c['regressions']} regressions, "
                         f"{c['improvements']} improvements, {c['exceeded']} beyond tolerance")
            metrics = c["metrics"]
            parts = [f"mean {m} {metrics[m]['mean']:.3f}" for m in ("edit", "fields", "semantic")
                     if metrics.get(m, {}).get("mean") is not None]
            cost = "n/a" if c["cost_usd"] is None else f"${c['cost_usd']:,.6f}"
            lines.append(f"  {', '.join(parts) or 'no drift metrics'}; {c['total_tokens']} tokens, cost {cost}")
        if self.results.stale_goldens:
            lines.append(f"stale goldens (prompt changed; re-record with --llmswap-record new): "
                         f"{len(self.results.stale_goldens)}")
            lines.extend(f"  {g}" for g in self.results.stale_goldens[:20])
        if self.results.unused_goldens:
            lines.append(f"unused goldens (no collected case uses them): {len(self.results.unused_goldens)}")
            lines.extend(f"  {g}" for g in self.results.unused_goldens[:20])
        lines.extend(f"recorded goldens: {p}" for p in self.recorded)
        lines.extend(f"{kind} report: {p}" for kind, p in self.written)
        return lines


def write_reports(state: LlmSwapSession) -> RunReport:
    """Aggregate the session's results and write the HTML, JSON and Markdown files it was asked for."""
    results = state.results_model()
    results.summaries = summarize(results)
    report = RunReport(results, recorded=list(state.recorded))
    options = state.options
    has_candidates = bool(results.summaries["candidates"])
    if options.report_json:
        atomic_write(options.report_json, json.dumps(results.to_dict(), indent=1, sort_keys=True) + "\n")
        report.written.append(("JSON", options.report_json))
    if options.report_html and has_candidates:
        from .report.html import render_html

        atomic_write(options.report_html, render_html(results))
        report.written.append(("HTML", options.report_html))
    if options.report_markdown:
        from .report.markdown import publish_markdown

        report.written.extend(("Markdown", p) for p in publish_markdown(results, options.report_markdown))
    return report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
