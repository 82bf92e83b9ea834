"""Issue 19.3 and 19.4: one pass rate in every report, and a first line that says what the switch saves or costs."""

from __future__ import annotations

import pytest

from pytest_llmswap.verdict.aggregate import summarize
from pytest_llmswap.report import view
from pytest_llmswap.report.html import render_html
from pytest_llmswap.report.markdown import render_markdown
from pytest_llmswap.report.terminal import RunReport
from pytest_llmswap.results import CaseResult, ContractInfo, ModelInfo, RunResults
from pytest_llmswap.verdict.summaries import DROP_IN, NOT_RECOMMENDED, REWORK, Switching, Verdict
from pytest_llmswap.types import Prices, Sample, Usage


def answer(latency: float) -> Sample:
    return Sample("ok", usage=Usage(input_tokens=500_000, output_tokens=500_000), latency_s=latency)


def prices(per_mtok: float) -> Prices:
    return Prices(input_per_mtok=per_mtok, output_per_mtok=per_mtok)


def run() -> RunResults:
    """Four cases; every check passes on ``cheap`` but two are beyond tolerance. 1 call = 1M tokens."""
    cases = [CaseResult("c", f"k{i}", name, {}, "p", golden=[answer(0.052)], golden_passes=1, output=answer(0.004),
                        candidate_passed=True, exceeded=["semantic 0.5 < 0.85"] if name == "cheap" and i < 2 else [])
             for name in ("cheap", "dear") for i in range(4)]
    results = RunResults(created_at="now", incumbent=ModelInfo("teacher", "openai/t", "litellm", prices=prices(10.0)),
                         candidates=[ModelInfo("cheap", "openai/c", "litellm", prices=prices(1.0)),
                                     ModelInfo("dear", "openai/d", "litellm", prices=prices(20.0))],
                         contracts=[ContractInfo("c", "text", {}, 1.0, rework_hours=2.0, calls_per_month=100)],
                         cases=cases)
    results.summaries = summarize(results)
    return results


def test_a_case_beyond_tolerance_is_not_a_passed_case_in_any_report():
    results = run()
    s = results.summaries.candidates["cheap"]
    assert (s.passed, s.checks_passed, s.pass_rate) == (2, 4, 0.5)
    assert s.pass_rate_ci[1] < 1.0 and s.contracts["c"].passed == 2
    line = RunReport(results).summary_lines()[2]
    assert line.startswith("  pass rate 50.0%: 2 of 4 cases passed (incumbent 100.0%); checks passed 4, 2 beyond")
    assert "| **cheap** | " in render_markdown(results) and "| 50.0% |" in render_markdown(results)
    page = render_html(results)
    assert "cheap: pass rate 50.0%" in page  # the chart's point, not the checks' 100%
    assert "checks passed 4 of 4" in page


@pytest.mark.parametrize(("months", "words"), [(4.25, "4.2 months"), (120.0, "120.0 months"),
                                               (14835.6, "never (over 10 years)")])
def test_a_break_even_beyond_ten_years_reads_never(months, words):
    sw = run().summaries.switching["cheap"]
    assert view.months(Switching(**{**sw.__dict__, "break_even_months": months})) == words


def views(labels: dict[str, str]) -> tuple[RunResults, list[view.CandidateView]]:
    results = run()
    return results, [view.CandidateView(c.model, c.summary, c.switching, Verdict(labels[c.model.name], "", "", ()))
                     for c in view.candidate_views(results)]


def test_the_first_line_names_the_cheapest_drop_in_and_its_saving():
    results, candidates = views({"cheap": DROP_IN, "dear": DROP_IN})
    # teacher: 100 calls x $10 = $1,000 a month; cheap $100; dear $2,000
    assert view.overall_line(results, candidates).startswith(
        "Switching to cheap saves $900.00 a month ($100.00 instead of $1,000.00). cheap and dear can replace")


def test_without_a_cheaper_drop_in_the_first_line_gives_rework_and_break_even():
    results, candidates = views({"cheap": REWORK, "dear": DROP_IN})
    # cheap needs rework (2 h x $100) on the contract beyond tolerance: $200 / $900 a month
    assert view.overall_line(results, candidates).startswith(
        "No cheaper drop-in: cheap (migrate with rework) saves $900.00 a month, after $200.00 of rework "
        "(break-even 0.2 months). dear can replace teacher as is")
    results, candidates = views({"cheap": NOT_RECOMMENDED, "dear": DROP_IN})
    assert "No cheaper drop-in: cheap (not recommended) saves $900.00 a month" in view.overall_line(results, candidates)


def test_the_first_line_of_every_report_carries_the_saving():
    results = run()
    first = view.overall_line(results, view.candidate_views(results))
    assert "saves $900.00 a month" in first
    assert RunReport(results).summary_lines()[0] == first
    md_first = next(x for x in render_markdown(results).splitlines() if x.startswith("**pytest-llmswap:**"))
    assert "saves $900.00 a month" in md_first
    page = render_html(results)
    # The header, above the fold: the saving comes before the first section of the page.
    assert page.index("saves $900.00 a month") < page.index('<section id="attention">')


def test_the_incumbents_recorded_latency_stands_apart_from_this_runs():
    results = run()
    note = "Incumbent latency p50 52 ms · p95 52 ms: timed when its goldens were recorded, not beside the candidates"
    assert note in render_html(results)
    assert "incumbent 52 ms" not in render_html(results)
    md = render_markdown(results)
    assert "| incumbent | — | $1,000.00 | not compared (below) |" in md and note in md.replace("\\", "")
