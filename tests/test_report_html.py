"""The HTML report: self-contained, escaped, complete, and bounded at scale."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from pytest_llmswap.aggregate import summarize
from pytest_llmswap.report import html as report_html
from pytest_llmswap.report.html import render_html, write_html
from pytest_llmswap.results import CaseResult, RunResults
from pytest_llmswap.report.svg import PlanePoint, capability_cost_plane, histogram
from pytest_llmswap.synthetic import synthetic_results
from pytest_llmswap.report.view import word_diff

HOSTILE = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def results() -> RunResults:
    return synthetic_results(600, extra_outputs={("haiku", "case-00003"): HOSTILE})


@pytest.fixture(scope="module")
def page(results) -> str:
    return render_html(results)


def test_self_contained(page):
    assert not re.search(r"""\s(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<style>") == 1


def test_model_output_is_escaped_and_csp_allows_only_our_script(page):
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;</ins>" in page
    assert "<img" not in page and page.count("<script") == 1
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_verdict_cards(page, results):
    cards = re.findall(r'<article class="card verdict-card (\w+)".*?</article>', page, re.S)
    assert cards == ["ok", "warn", "bad"]  # drop-in, migrate with rework, not recommended, in candidate order
    first = re.search(r'<article class="card verdict-card ok".*?</article>', page, re.S).group(0)
    s = results.summaries.candidates["haiku"]
    for text in ("drop-in", "Pass rate", "that the incumbent would do this badly", "Monthly cost", "p50", "p95",
                 "Tokens per task", "Break-even", f"{s.regressions:g} regression(s)", "$112.00"):
        assert text in first


def test_plane_has_every_model_and_histograms_mark_the_noise_floor(page):
    plane = re.search(r'<svg[^>]*class="chart plane".*?</svg>', page, re.S).group(0)
    assert plane.count('class="point') == 4 and "gpt-4o (incumbent)" in plane
    hists = re.findall(r'<svg[^>]*class="chart hist".*?</svg>', page, re.S)
    assert hists and any("noise floor 0.85" in h for h in hists)


def test_contract_table_lists_regressions_first(page):
    table = re.search(r'<table class="sortable contracts">.*?</table>', page, re.S).group(0)
    regressions = [float(v) for v in re.findall(r'<tr class="[^"]*">\s*<td.*?</td><td.*?</td>\s*<td.*?</td><td.*?</td>'
                                                r'\s*<td data-v="([\d.]+)">', table, re.S)]
    assert len(regressions) == 24 and regressions == sorted(regressions, reverse=True) and regressions[0] > 0


def test_regressions_are_expanded_with_a_word_diff_and_the_prompt(page):
    case = re.search(r'<details class="case o-regression" open>.*?case-00003.*?</details>\s*</details>', page, re.S)
    assert case, "the hostile case regressed and must be expanded"
    body = case.group(0)
    assert "<del>" in body and "<ins>" in body and "prompt and variables" in body and "Ticket:" in body
    assert "AssertionError: category" in body


def test_methodology_names_resolved_models_and_time(page):
    methodology = page[page.index('id="methodology"'):]
    for text in ("gpt-4o-2024-08-06", "claude-haiku-4-5-20251001", "gpu_hour_usd = 2.5", "2026-05-01T12:00:00",
                 "McNemar", "Noise floor", "Break-even"):
        assert text in methodology


def test_word_diff():
    left, right = word_diff("the cat sat on the mat", "the dog sat on a mat")
    assert left == [("eq", "the "), ("del", "cat "), ("eq", "sat on "), ("del", "the "), ("eq", "mat")]
    assert right == [("eq", "the "), ("ins", "dog "), ("eq", "sat on "), ("ins", "a "), ("eq", "mat")]
    assert word_diff("", "new words") == ([], [("ins", "new words")])


def _one_contract(passing: int, failing: int, text: str = "an answer") -> RunResults:
    base = synthetic_results(3)
    template = base.cases[0]
    cases = [CaseResult(contract=template.contract, case_id=f"c{i:04d}", candidate="haiku", variables={},
                        prompt="p", golden=[{"text": text}], output={"text": text + " changed"},
                        golden_passed=True, candidate_passed=i >= failing,
                        flip="regression" if i < failing else None, passed=i >= failing)
             for i in range(passing + failing)]
    return RunResults(created_at="now", incumbent=base.incumbent, candidates=base.candidates[:1],
                      contracts=base.contracts[:1], cases=cases)


def test_case_detail_is_capped_with_notes(monkeypatch):
    monkeypatch.setattr(report_html, "ATTENTION_SHOWN", 3)
    monkeypatch.setattr(report_html, "COMPACT_LIMIT", 4)
    monkeypatch.setattr(report_html, "PASSING_SHOWN", 2)
    page = render_html(_one_contract(passing=9, failing=10))
    assert page.count('<details class="case o-regression" open>') == 3
    assert page.count('<td class="o-regression">regression</td>') == 4
    assert "3 more case(s) that need attention are only in the results JSON" in page
    assert page.count('<details class="case o-passed">') == 2
    assert "9 passing case(s), 2 shown in full" in page and "7 more passing case(s) not shown" in page


def test_long_texts_are_cut(monkeypatch):
    monkeypatch.setattr(report_html, "TEXT_LIMIT", 50)
    page = render_html(_one_contract(passing=0, failing=1, text="word " * 1000))
    assert "Texts cut at 50 characters" in page and "word " * 20 not in page


def test_results_without_summaries_still_render():
    results = synthetic_results(30)
    results.summaries = None
    page = render_html(results)
    assert "No summary for this candidate" in page and "case-00001" in page


def test_write_html(tmp_path, results):
    path = write_html(results, tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_svg_text_is_escaped():
    svg = capability_cost_plane([PlanePoint("<b>x</b>", 0.9, 1.0), PlanePoint("un&priced", 0.8, None)])
    assert "&lt;b&gt;x&lt;/b&gt;" in svg and "un&amp;priced" in svg and "<b>" not in svg


def test_plane_uses_a_log_axis_for_wide_cost_ranges():
    assert "log scale" in capability_cost_plane([PlanePoint("a", 0.9, 0.01), PlanePoint("b", 0.95, 5.0)])
    assert "log scale" not in capability_cost_plane([PlanePoint("a", 0.9, 1.0), PlanePoint("b", 0.95, 5.0)])


def test_histogram_counts_every_value():
    svg = histogram([0.1, 0.1, 0.5, 0.9], noise_floor=0.8, bins=4)
    counts = [int(n) for n in re.findall(r"<title>(\d+) case", svg)]
    assert sum(counts) == 4 and max(counts) == 2 and "noise floor 0.8" in svg


def test_replay_only_run_renders_the_goldens():
    base = synthetic_results(3)
    cases = [CaseResult(contract=base.contracts[0].id, case_id=f"r{i}", candidate=None, variables={}, prompt="p",
                        golden=[{"text": f"golden answer {i}"}], golden_passed=i == 0, passed=i == 0,
                        failure=None if i == 0 else "AssertionError: golden fails its own check")
             for i in range(2)]
    results = RunResults(created_at="now", incumbent=base.incumbent, contracts=base.contracts[:1], cases=cases)
    results.summaries = summarize(results)
    page = render_html(results)
    assert "No candidate in this run" in page and "golden answer 1" in page
    assert "AssertionError: golden fails its own check" in page


def test_plane_labels_of_coinciding_points_do_not_overlap():
    import re

    from pytest_llmswap.report.svg import PlanePoint, capability_cost_plane

    svg = str(capability_cost_plane([PlanePoint("teacher-int8", 1.0, 0.003), PlanePoint("student", 1.0, 0.003),
                                     PlanePoint("teacher-bf16", 1.0, 0.0031)]))
    ys = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" class="label">', svg)]
    assert len(ys) == 3 and len(set(ys)) == 3 and min(abs(a - b) for a in ys for b in ys if a != b) >= 13
