"""The pull-request Markdown: content, the size cap at 10,000 cases, and untrusted output kept in code."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_llmswap.verdict.aggregate import summarize
from pytest_llmswap.report import markdown
from pytest_llmswap.report.markdown import append_step_summary, publish_markdown, render_markdown, short_diff
from synthetic import synthetic_results

HOSTILE = "```\n<img src=https://evil.example/x.png> @octocat | ![t](https://evil.example/t.png) <script>x</script>"


@pytest.fixture(scope="module")
def big():
    results = synthetic_results(10_000, extra_outputs={("haiku", "case-00003"): HOSTILE})
    for i, case in list(enumerate(results.cases))[::50]:
        # Long outputs must not blow the budget: only a snippet of each is shown.
        results.cases[i] = replace(case, output=replace(case.output, text=case.output.text + " filler" * 3000))
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
    assert text.startswith("**pytest-llmswap:** ") and "\n" not in text.split("\n\n")[0]  # one line first
    assert "| **haiku** | ✅ drop-in |" in text
    assert "| **local-int8** | ❌ not recommended |" in text
    assert "### Needs attention" in text and "### Cases that need attention" in text
    assert "```diff\n- " in text and text.rstrip().endswith(markdown.MARKER)
    table = re.search(r"^\| candidate .*$", text, re.M).group(0)
    assert table.count("|") == 8  # seven narrow columns


SNAPSHOTS = Path(__file__).parent / "snapshots"


def _snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/NAME; LLMSWAP_UPDATE_SNAPSHOTS=1 rewrites it (review the diff)."""
    path = SNAPSHOTS / name
    if os.environ.get("LLMSWAP_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _small_run():
    results = synthetic_results(24, n_contracts=3)
    i = next(i for i, c in enumerate(results.cases) if c.candidate == "gpt-4o-mini")
    error = "APIError: HTTP 500 after 3 retries (/home/ci/app/client.py)"
    results.cases[i] = replace(results.cases[i], call_error=error, failure=error, candidate_passed=False, passed=False)
    results.stale_goldens = ["test_triage.py::test_triage[ticket-7]"]
    results.unused_goldens = ["test_triage.py::test_triage[ticket-99]"]
    results.summaries = summarize(results)
    return results


def test_snapshot_pr_comment(monkeypatch):
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    _snapshot("pr-comment.md", render_markdown(_small_run()))


def test_snapshot_pr_comment_in_github_actions(monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/support-bot")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    text = render_markdown(_small_run())
    assert "(https://github.com/acme/support-bot/actions/runs/4242#artifacts)" in text.split("\n")[2]
    _snapshot("pr-comment-actions.md", text)


def test_problems_name_failed_calls_goldens_and_never_a_local_path():
    text = render_markdown(_small_run())
    problems = text[text.index("### Needs attention"):text.index("<details>")]
    assert "1 of 8 calls failed, first: `APIError: HTTP 500 after 3 retries (…/app/client.py)`" in problems
    assert "**1 stale golden**" in problems and "**1 unused golden**" in problems
    assert "/home/ci" not in text


def test_terminal_section_names_verdicts_items_failed_calls_and_cost():
    from pytest_llmswap.report.terminal import RunReport

    results = _small_run()
    lines = RunReport(results).summary_lines()
    assert lines[0] == markdown.view.overall_line(results, markdown.view.candidate_views(results))
    s = results.summaries.candidates["gpt-4o-mini"]
    block = lines[lines.index(next(x for x in lines if x.startswith("gpt-4o-mini: "))):][:4]
    assert block[0] == f"gpt-4o-mini: {results.summaries.verdicts['gpt-4o-mini'].headline}"
    # One passed number (the failed call is a failed case); the checks alone are labelled as such.
    assert block[1].startswith(f"  pass rate {markdown.view.pct(s.pass_rate)}: {s.passed} of {s.cases} cases passed")
    assert f"checks passed {s.checks_passed}," in block[1] and "; 1 failed call, first:" in block[1]
    assert block[2].startswith("  cost: $") and "per 1,000 calls" in block[2] and "e-0" not in "\n".join(lines)


@pytest.mark.parametrize("limit", [60_000, 20_000, 5_000])
def test_size_cap_at_ten_thousand_cases(big, limit):
    text = render_markdown(big, limit=limit)
    assert len(text.encode("utf-8")) <= limit
    assert re.search(r"_[\d,]+ more cases that need attention are not listed here", text)


def test_cap_holds_even_when_the_tables_alone_are_too_long(big):
    text = render_markdown(big, limit=1_000)
    assert len(text.encode("utf-8")) <= 1_000 and "more cases that need attention" in text


def test_per_candidate_cap(monkeypatch, big):
    monkeypatch.setattr(markdown, "CASES_PER_CANDIDATE", 2)
    text = render_markdown(big, limit=1_000_000)
    assert text.count("<details><summary>") == 1 + 3 * 2  # the switching costs, then 2 cases per candidate


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
    results.cases = [replace(c, candidate=new) if c.candidate == old else c for c in results.cases]
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
    assert summary.read_text().startswith("earlier step\n**pytest-llmswap:** ")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert append_step_summary("x") is False
    assert publish_markdown(results, None) == []
