"""The pull-request Markdown: content, the size cap at 10,000 cases, and untrusted output kept in code."""

from __future__ import annotations

import re

import pytest

from pytest_llmswap.aggregate import summarize
from pytest_llmswap.report import markdown
from pytest_llmswap.report.markdown import append_step_summary, publish_markdown, render_markdown, short_diff
from pytest_llmswap.synthetic import synthetic_results

HOSTILE = "```\n<img src=https://evil.example/x.png> @octocat | ![t](https://evil.example/t.png) <script>x</script>"


@pytest.fixture(scope="module")
def big():
    results = synthetic_results(10_000, extra_outputs={("haiku", "case-00003"): HOSTILE})
    for case in results.cases[::50]:
        # Long outputs must not blow the budget: only a snippet of each is shown.
        case.output = dict(case.output, text=case.output["text"] + " filler" * 3000)
    return results


def _outside_fences(text: str) -> str:
    """The text with every fenced code block removed (fences of 3+ backticks, closed by the same run)."""
    out, fence = [], None
    for line in text.split("\n"):
        if fence is None:
            m = re.match(r"^(`{3,})", line)
            if m:
                fence = m.group(1)
            else:
                out.append(line)
        elif line == fence:
            fence = None
    assert fence is None, "an unclosed code fence"
    return "\n".join(out)


def test_summary_content(big):
    text = render_markdown(big)
    assert text.startswith("## pytest-llmswap: model migration report")
    assert "| **haiku** | ✅ drop-in |" in text
    assert "| **local-int8** | ❌ not recommended |" in text
    assert "### Switching cost" in text and "### Top regressions and failures" in text
    assert "```diff\n- " in text


@pytest.mark.parametrize("limit", [60_000, 20_000, 5_000])
def test_size_cap_at_ten_thousand_cases(big, limit):
    text = render_markdown(big, limit=limit)
    assert len(text.encode("utf-8")) <= limit
    assert re.search(r"_[\d,]+ more case\(s\) that need attention are not listed here", text)


def test_cap_holds_even_when_the_tables_alone_are_too_long(big):
    text = render_markdown(big, limit=1_000)
    assert len(text.encode("utf-8")) <= 1_000 and "more case(s) that need attention" in text


def test_per_candidate_cap(monkeypatch, big):
    monkeypatch.setattr(markdown, "CASES_PER_CANDIDATE", 2)
    text = render_markdown(big, limit=1_000_000)
    assert text.count("<details><summary>") == 1 + 3 * 2  # the verdict reasons, then 2 cases per candidate


def test_untrusted_output_stays_inside_code(big):
    text = render_markdown(big, limit=1_000_000)
    assert "@octocat" in text  # the hostile case is listed...
    rest = _outside_fences(text)
    for bad in ("@octocat", "<img", "<script", "evil.example"):
        assert bad not in rest  # ...but only inside a code fence


def test_table_cells_escape_pipes_and_markup():
    results = synthetic_results(30)
    old, new = results.candidates[0].name, "ha|iku <b>*x*</b>"
    results.candidates[0].name = new
    for case in results.cases:
        if case.candidate == old:
            case.candidate = new
    results.summaries = summarize(results)
    text = render_markdown(results)
    assert "| **ha\\|iku \\<b\\>\\*x\\*\\</b\\>** |" in text
    for table in re.findall(r"(?:^\|.*\n)+", text, re.M):
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in table.strip().split("\n")}
        assert len(widths) == 1, table


def test_short_diff_centres_on_the_first_difference():
    golden = " ".join(f"w{i}" for i in range(200))
    candidate = golden.replace("w150", "CHANGED")
    block = short_diff(golden, candidate)
    lines = block.split("\n")
    assert lines[0] == "```diff" and lines[-1] == "```"
    assert lines[1].startswith("- …") and "w150" in lines[1] and "CHANGED" in lines[2]
    assert len(lines[1]) < 260


def test_publish_writes_the_file_and_appends_the_step_summary(tmp_path, monkeypatch):
    results = synthetic_results(30)
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    written = publish_markdown(results, tmp_path / "pr.md")
    assert written == [tmp_path / "pr.md", summary]
    assert summary.read_text().startswith("earlier step\n## pytest-llmswap")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert append_step_summary("x") is False
    assert publish_markdown(results, None) == []
