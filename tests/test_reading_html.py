"""Reading the HTML report (issue 20.8): the matrix search finds prompts and tolerance lines, and the models
table names a checkpoint only where the answers named one."""

from __future__ import annotations

import html
import re
from dataclasses import replace

from pytest_llmswap.report.html import render_html
from pytest_llmswap.results import RunResults
from pytest_llmswap.verdict.aggregate import summarize
from synthetic import synthetic_results

CATEGORY = 'field \'category\': golden "billing", candidate "bug"'


def category_drift() -> RunResults:
    """A run where 7 of haiku's cases break a ``fields: ["category"]`` tolerance, and "category" is in no other
    text of the matrix (the synthetic check messages name it too: they are renamed here)."""
    results = synthetic_results(120)
    results.cases = [replace(c, check_message="AssertionError: label not in the expected set") if c.check_message
                     else c for c in results.cases]
    drifted = [i for i, c in enumerate(results.cases) if c.candidate == "haiku" and c.passed][:7]
    for i in drifted:
        results.cases[i] = replace(results.cases[i], exceeded=[CATEGORY], exceeded_metrics=["fields"], passed=False)
    results.summaries = summarize(results)
    return results


def search_texts(page: str) -> dict[str, str]:
    """Each matrix row's search text, by case id."""
    rows = re.findall(r'<tr data-p="[^"]*" data-s="([^"]*)"[^>]*><td class="mono">[^<]*</td><td class="mono">([^<]*)</td>',
                      page)
    return {case: html.unescape(text) for text, case in rows}


def test_the_matrix_search_finds_tolerance_lines_and_prompts() -> None:
    texts = search_texts(render_html(category_drift()))
    assert len(texts) == 40
    assert len([t for t in texts.values() if "category" in t]) == 7
    assert all('golden "billing", candidate "bug"' in t for t in texts.values() if "category" in t)
    # the prompt (the rendered messages), not only the variables
    assert all("classify the ticket and answer in json." in t for t in texts.values())


def models_table(page: str) -> str:
    return re.search(r"<h3>Models</h3>.*?</table>", page, re.S).group(0)


def test_the_models_table_shows_a_checkpoint_or_the_spec_never_the_bare_name() -> None:
    results = synthetic_results(30)
    served, silent = results.candidates[1], results.candidates[2]
    served.name, served.spec, served.resolved_id = "cand", "openai/cand", "cand"  # --served-model-name cand
    silent.resolved_id = ""
    page = render_html(results)
    rows = re.findall(r"<tr><td>(?:incumbent|candidate)</td><td>([^<]*)</td>(.*?)</tr>", models_table(page), re.S)
    cells = {name: re.findall(r'<td class="mono">(.*?)</td>', row) for name, row in rows}
    assert len(cells) == 4
    assert cells["haiku"][1] == "claude-haiku-4-5-20251001"
    assert cells["cand"][1].startswith("openai/cand <span class=\"note\">(the spec called: its answers named only cand)")
    assert cells["local-int8"][1].startswith("hf:")
    assert "no answer named a model" in cells["local-int8"][1]
    card = re.search(r'<article class="card verdict-card \w+" id="candidate-2">.*?</article>', page, re.S).group(0)
    assert "checkpoint" not in card  # the card names no checkpoint it does not know


def test_the_markdown_header_names_the_incumbents_checkpoint_or_its_spec_never_the_bare_name() -> None:
    from pytest_llmswap.report.markdown import render_markdown

    results = synthetic_results(30)
    incumbent = results.incumbent
    incumbent.name, incumbent.spec, incumbent.resolved_id = "prod", "openai/prod", "prod"  # answers named only prod
    assert "Incumbent **prod** (`openai/prod`)" in render_markdown(results)
    incumbent.resolved_id = "gpt-4o-2024-08-06"
    assert "Incumbent **prod** (`gpt-4o-2024-08-06`)" in render_markdown(results)
