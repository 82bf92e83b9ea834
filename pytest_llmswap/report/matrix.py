"""The case x candidate matrix of the HTML report: one row per case, one cell per candidate, worst rows first.

Every row is in the file (the report stays one self-contained file); the page's script shows them a page
at a time and filters them, so 10,000 rows stay quick. Without the script the first page stays visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..results import CaseResult, RunResults
from . import view

#: Rows visible per page (the script pages through the rest; without it only the first page shows).
PAGE_ROWS = 100
#: Characters of a case's variables that the search box can find.
SEARCH_VARIABLES = 200
#: Characters of a case's prompt (its rendered messages) that the search box can find.
SEARCH_PROMPT = 300
#: Characters of each tolerance line broken (``field 'category': golden "bug", candidate "billing"``) it can find.
SEARCH_EXCEEDED = 200


@dataclass(frozen=True)
class Cell:
    """One case on one candidate: its outcome word, metrics beyond tolerance, the anchor of its detail."""

    outcome: str
    exceeded: tuple[str, ...]
    anchor: str | None
    message: str


@dataclass(frozen=True)
class Row:
    """One case across the candidates; ``problems`` holds the column indices that need attention."""

    contract: str
    case_id: str
    cells: tuple[Cell | None, ...]
    problems: tuple[int, ...]
    search: str
    hidden: bool


def columns(results: RunResults) -> list[str]:
    """The candidates in command-line order, or the replay column when no candidate ran."""
    return [m.name for m in results.candidates] or ["replay"]


def matrix_rows(results: RunResults, anchors: dict[tuple[str, str, str], str]) -> list[Row]:
    """Rows with a problem first (the worst outcome, then the most candidates affected), then the rest.

    ``anchors`` maps (candidate, contract, case id) to the id of the case's rendered detail, when it has one.
    """
    names = columns(results)
    index = {name: i for i, name in enumerate(names)}
    by_case: dict[tuple[str, str], list[CaseResult | None]] = {}
    for case in results.cases:
        column = index.get(case.candidate or "replay")
        if column is None:
            continue
        by_case.setdefault((case.contract, case.case_id), [None] * len(names))[column] = case
    keyed = []
    for (contract, case_id), cases in by_case.items():
        present = [c for c in cases if c is not None]
        problems = tuple(i for i, c in enumerate(cases) if c is not None and view.needs_attention(c))
        worst = min(view.attention_key(c)[:2] for c in present)
        keyed.append(((worst, -len(problems), contract, case_id), contract, case_id, cases, problems))
    keyed.sort(key=lambda k: k[0])
    rows = []
    for number, (_, contract, case_id, cases, problems) in enumerate(keyed):
        cells = tuple(None if c is None else _cell(c, anchors.get((c.candidate or "replay", contract, case_id)))
                      for c in cases)
        rows.append(Row(contract, case_id, cells, problems, _search_text(contract, case_id, cases, cells),
                        hidden=number >= PAGE_ROWS))
    return rows


def _cell(case: CaseResult, anchor: str | None) -> Cell:
    message = view.strip_paths(case.call_error or case.check_message or case.failure or "")
    return Cell(view.outcome(case), tuple(case.exceeded_metrics), anchor, message[:200])


def _search_text(contract: str, case_id: str, cases: list[CaseResult | None], cells: tuple[Cell | None, ...]) -> str:
    """What the search box finds in a row: contract, case, variables, prompt, and per candidate its outcome, the
    metrics and tolerance lines it broke, its notes (how it did on the incumbent's prompt, ...), and its check, call
    or error message."""
    first = next(c for c in cases if c is not None)
    variables = json.dumps(first.variables, ensure_ascii=False, default=str)[:SEARCH_VARIABLES]
    words = [contract, case_id, variables, view.strip_paths(first.prompt)[:SEARCH_PROMPT]]
    for case, cell in zip(cases, cells):
        if case is None or cell is None:
            continue
        words.append(f"{cell.outcome} {' '.join(cell.exceeded)} {cell.message}")
        words.extend(view.strip_paths(line)[:SEARCH_EXCEEDED] for line in (*case.exceeded, *case.notes.values()))
    return " ".join(" ".join(words).split()).lower()
