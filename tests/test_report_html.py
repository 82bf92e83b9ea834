"""The HTML report: self-contained, escaped, complete, and bounded at scale."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace

import pytest
from markupsafe import escape

from pytest_llmswap.verdict.aggregate import summarize
from pytest_llmswap.report import html as report_html
from pytest_llmswap.report import matrix
from pytest_llmswap.drift.metrics import report_order
from pytest_llmswap.report.html import render_html, write_html
from pytest_llmswap.results import CaseResult, RunResults
from pytest_llmswap.types import Sample
from pytest_llmswap.report.svg import PlanePoint, capability_cost_plane, frontier, histogram, nice_ticks
from synthetic import synthetic_results
from pytest_llmswap.report.view import candidate_views, money, overall_line, strip_paths, word_diff

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
                 "Tokens per task", "Break-even", f"{s.regressions:g} broken", "Broken-case rate", "$112.00"):
        assert text in first


def test_plane_has_every_model_and_histograms_mark_the_noise_floor(page):
    plane = re.search(r'<svg[^>]*class="chart plane".*?</svg>', page, re.S).group(0)
    assert plane.count('class="point') == 4 and "gpt-4o (incumbent)" in plane
    hists = re.findall(r'<svg[^>]*class="chart hist".*?</svg>', page, re.S)
    assert hists and any("noise floor 0.85" in h for h in hists)


def test_contract_table_lists_regressions_first(page):
    table = re.search(r'<table class="sortable contracts">.*?</table>', page, re.S).group(0)
    regressions = [float(v) for v in re.findall(r'<tr class="[^"]*">\s*<td.*?</td><td.*?</td>\s*<td.*?</td><td.*?</td>'
                                                r'<td.*?</td>\s*<td data-v="([\d.]+)">', table, re.S)]
    assert len(regressions) == 24 and regressions == sorted(regressions, reverse=True) and regressions[0] > 0


def test_regressions_have_a_word_diff_and_the_prompt(page):
    case = re.search(r'<details class="case o-regression" id="d\d+"[^>]*>\s*<summary><span class="cand">haiku</span> '
                     r'<span class="mono">case-00003</span>.*?</details>\s*</details>', page, re.S)
    assert case, "the hostile case regressed and must be rendered in full"
    body = case.group(0)
    assert "<del>" in body and "<ins>" in body and "prompt and variables" in body and "Ticket:" in body
    assert "AssertionError: category" in body


def test_methodology_names_resolved_models_and_time(page):
    methodology = page[page.index('id="methodology"'):]
    for text in ("gpt-4o-2024-08-06", "claude-haiku-4-5-20251001", "gpu_hour_usd = 2.5", "2026-05-01T12:00:00",
                 "exchangeability test", "Noise floor", "Break-even"):
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
                        prompt="p", golden=[Sample(text)], output=Sample(text + " changed"),
                        golden_passes=1, candidate_passed=i >= failing,
                        flip="regression" if i < failing else None, passed=i >= failing)
             for i in range(passing + failing)]
    return RunResults(created_at="now", incumbent=base.incumbent, candidates=base.candidates[:1],
                      contracts=base.contracts[:1], cases=cases)


def test_case_detail_is_capped_and_the_matrix_names_every_case(monkeypatch):
    monkeypatch.setattr(report_html, "ATTENTION_SHOWN", 3)
    monkeypatch.setattr(report_html, "ATTENTION_OPEN", 1)
    monkeypatch.setattr(report_html, "PASSING_SHOWN", 2)
    monkeypatch.setattr(matrix, "PAGE_ROWS", 5)
    page = render_html(_one_contract(passing=9, failing=10))
    assert len(re.findall(r'<details class="case o-regression" id="d\d+" open>', page)) == 1
    assert len(re.findall(r'<details class="case o-regression" id="d\d+">', page)) == 2
    assert "7 more cases that need attention: see the matrix" in page
    assert len(re.findall(r'<details class="case o-passed" id="d\d+">', page)) == 2
    assert "9 passing cases, 2 shown in full" in page and "7 more passing cases not shown" in page
    rows = re.findall(r'<tr data-p="([^"]*)" data-s="[^"]*"( hidden)?><td class="mono">[^<]*</td>'
                      r'<td class="mono">(c\d+)</td>', page)
    assert len(rows) == 19  # every case has its row
    assert [p for p, _, _ in rows] == ["0"] * 10 + [""] * 9  # the regressions first
    assert [bool(h) for _, h, _ in rows] == [False] * 5 + [True] * 14  # one page visible without the script
    # Rendered details are linked from their cells; the others are not.
    assert page.count('<td class="o-regression"><a href="#d') == 3 and page.count('<td class="o-regression">regression') == 7


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
    assert "&lt;b&gt;x&lt;/b&gt;" in svg and "<b>" not in svg and "priced" not in svg  # unpriced: off the plane


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
                        golden=[Sample(f"golden answer {i}")], golden_passes=int(i == 0), passed=i == 0,
                        failure=None if i == 0 else "AssertionError: golden fails its own check")
             for i in range(2)]
    results = RunResults(created_at="now", incumbent=base.incumbent, contracts=base.contracts[:1], cases=cases)
    results.summaries = summarize(results)
    page = render_html(results)
    assert "No candidate in this run" in page and "golden answer 1" in page
    assert "AssertionError: golden fails its own check" in page


def test_page_opens_on_the_overall_line_then_attention_across_candidates():
    results = synthetic_results(300)
    i = next(i for i, c in enumerate(results.cases) if c.candidate == "gpt-4o-mini" and c.flip is None)
    error = "APIError: HTTP 500 from /srv/llm/proxy/handler.py"
    results.cases[i] = replace(results.cases[i], call_error=error, failure=error, candidate_passed=False, passed=False)
    results.stale_goldens = ["test_triage.py::test_triage[old-1]"]
    results.summaries = summarize(results)
    page = render_html(results)
    overall = re.search(r'<p class="overall" id="overall"><b>(.*?)</b>', page).group(1)
    assert overall == escape(overall_line(results, candidate_views(results)))
    assert overall.startswith(("Switching to ", "No cheaper drop-in: "))  # what the switch saves or costs, first
    assert page.index('id="overall"') < page.index('id="attention"') < page.index('id="verdicts"')
    items = re.findall(r'<li class="a-(\w+)">.*?<b>(.*?)</b>:? ?([^<]*)', page[page.index('id="attention"'):])
    # Failed calls, then regressions (most first), then drift beyond tolerance, then goldens: across candidates.
    assert [(rank, who) for rank, who, _ in items[:2]] == [("0", "gpt-4o-mini"), ("1", "local-int8")]
    assert [rank for rank, _, _ in items] == sorted(rank for rank, _, _ in items)
    assert items[-1][:2] == ("goldens", "1 stale golden")
    assert "/srv/llm" not in page and "…/proxy/handler.py" in page  # no absolute local path anywhere
    # Every verdict card and attention item links to the matrix with its candidate's column.
    assert len(re.findall(r'<a href="#matrix" data-column="\d">Cases that need attention on', page)) == 3
    assert 'data-search="tests/test_suite_0.py::test_contract_0"' in page


def test_exceeded_metrics_are_highlighted_in_the_matrix_and_the_case():
    page = render_html(synthetic_results(90))
    assert re.search(r'<td class="o-exceeded"[^>]*><a href="#d\d+">exceeded</a> <span class="exc">semantic</span></td>', page)
    metrics = re.search(r'<table class="metrics"><tr>(.*?)</tr>\s*<tr>(.*?)</tr>',
                        page[page.index('<details class="case o-exceeded"'):], re.S)
    names = re.findall(r"<th>(\w+)</th>", metrics.group(1))
    cells = re.findall(r"<td( class=\"exc\")?>", metrics.group(2))
    assert [n for n, c in zip(names, cells) if c] == ["semantic"]


def test_models_show_spec_checkpoint_and_cost_basis_without_local_paths():
    results = synthetic_results(30)
    results.candidates[2].spec = "hf:/home/alice/work/models/triage?quant=int8"
    results.candidates[2].resolved_id = "hf:triage@4f2a9c1e"
    results.candidates[2].cost_basis = "$2.5 per GPU hour at 400 output tokens/s measured in this run"
    page = render_html(results)
    assert "/home/alice" not in page and "hf:…/models/triage?quant=int8" in page
    card = re.search(r'<article class="card verdict-card \w+" id="candidate-3">.*?</article>', page, re.S).group(0)
    assert "checkpoint <code>hf:triage@4f2a9c1e</code>" in card and "400 output tokens/s measured in this run" in card


def test_money_is_never_in_exponent_notation():
    assert money(1.56e-05) == "$0.0000156" and money(0.0121) == "$0.01" and money(-0.004) == "-$0.00400"
    assert money(1234.5) == "$1,234.50" and money(0) == "$0.00"
    page = render_html(synthetic_results(300))
    assert not re.search(r"\$\d(\.\d+)?e-\d", page)


def test_strip_paths_keeps_urls_and_relative_paths():
    assert strip_paths("see https://api.example.com/v1/chat/completions") == "see https://api.example.com/v1/chat/completions"
    assert strip_paths("tests/llm/test_x.py::t and ./models/triage") == "tests/llm/test_x.py::t and ./models/triage"
    assert strip_paths(r"C:\Users\bob\models\x failed") == "…/models/x failed"


def test_sortable_headers_are_buttons_with_a_mean_column_per_drift_metric_in_report_order():
    results = synthetic_results(30)
    page = render_html(results)
    headers = re.findall(r'<th data-col="\d+" aria-sort="none"><button type="button">([^<]*)</button>', page)
    measured = report_order({name for c in results.cases for name, v in c.metrics.items() if v is not None})
    assert "edit" in measured and "semantic" in measured
    assert headers == ["contract", "candidate", "cases", "passed", "checks passed", "regressions", "improvements",
                       "beyond tolerance", *(f"mean {m}" for m in measured), "cost / call",
                       "incumbent cost / call", "rework"]


def test_plane_ticks_are_round():
    ticks, decimals = nice_ticks(0.87, 1.0)
    assert [round(t, 4) for t in ticks] == [0.85, 0.9, 0.95, 1.0] and decimals == 2
    ticks, decimals = nice_ticks(0.0, 0.0277)
    assert [round(t, 4) for t in ticks] == [0.0, 0.01, 0.02, 0.03] and decimals == 2
    svg = str(capability_cost_plane([PlanePoint("a", 0.975, 0.0121), PlanePoint("b", 0.9, 0.0241)]))
    labels = re.findall(r'class="tick"[^>]*>([^<]+)</text>', svg)
    assert "98%" not in labels and labels[-4:] == ["$0.00", "$0.01", "$0.02", "$0.03"]
    assert all(re.fullmatch(r"\d+%|\$\d\.\d\d", t) for t in labels), labels


def _boxes(svg: str) -> tuple[list[tuple[float, float, float, float]], list[tuple[float, float, float, float]]]:
    """Label boxes (from x, baseline, anchor and the 7.2 px a character) and marker boxes of a plane."""
    labels = []
    for x, y, anchor, text in re.findall(r'<text x="([\d.-]+)" y="([\d.-]+)" class="label" text-anchor="(\w+)">'
                                         r"([^<]*)</text>", svg):
        x, y, w = float(x), float(y), 7.2 * len(text.replace("&amp;", "&"))
        left = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        labels.append((left, y - 11, left + w, y + 3))
    markers = [(float(x) - 6, float(y) - 6, float(x) + 6, float(y) + 6)
               for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)]
    markers += [(float(x) - 8, float(y) - 8, float(x) + 8, float(y) + 8)
                for x, y in re.findall(r'<path d="M([\d.]+) [\d.]+ L[\d.]+ ([\d.]+) ', svg)]
    return labels, markers


def test_plane_labels_never_overlap_labels_or_markers():
    # The README's case: the incumbent's label must not sit under the candidates' markers.
    points = [PlanePoint("incumbent (incumbent)", 1.0, 0.0031, (0.94, 1.0), incumbent=True, css="inc"),
              PlanePoint("teacher-int8", 1.0, 0.003), PlanePoint("student", 0.98, 0.003),
              PlanePoint("teacher-bf16", 1.0, 0.0032)]
    labels, markers = _boxes(str(capability_cost_plane(points)))
    assert len(labels) == 4 and len(markers) == 4

    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    assert not any(overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    assert not any(overlap(a, m) for a in labels for m in markers)
    assert all(0 <= a[0] and a[2] <= 620 for a in labels)


def test_plane_marks_the_frontier_and_the_incumbents_interval(page):
    points = [PlanePoint("cheap", 0.80, 0.1), PlanePoint("dominated", 0.79, 0.5), PlanePoint("better", 0.95, 1.0),
              PlanePoint("best", 0.99, 4.0)]
    assert [p.label for p in frontier(points)] == ["cheap", "better", "best"]
    svg = str(capability_cost_plane(points))
    assert svg.count('class="frontier"') == 1 and svg.count("point  front") == 3
    plane = re.search(r'<svg[^>]*class="chart plane".*?</svg>', page, re.S).group(0)
    incumbent = plane.index('class="point inc')
    assert plane.rfind('class="errbar"', 0, incumbent) > plane.rfind("</circle>", 0, incumbent)  # its own bar
