"""Contracts for the support application itself (support.py): no prompt in the test, the app's own calls.

Each case calls the application; the value the test returns is what is recorded and compared. Every LLM
call the application makes inside the test is intercepted: answered from the golden (replay, the default,
offline), sent to the incumbent (record) or to each candidate (``--candidate-model``). See docs/app-calls.md.

The goldens were recorded with ``pytest examples/app --incumbent-model teacher --llmswap-record all``.
"""

import json
from pathlib import Path

import support

from pytest_llmswap import llm_contract

# Every third ticket of the triage suite (ordinary and ambiguous ones): two calls per case keep it quick.
TICKETS = [json.loads(line) for line in (Path(__file__).parent.parent / "data" / "tickets.jsonl").read_text(
    encoding="utf-8").splitlines() if line.strip()][::3]


@llm_contract(
    cases=TICKETS,
    output="json",
    # A downstream router keys on the category: it must not change, even where the ticket is ambiguous.
    tolerance={"fields": ["category"]},
    rework_hours=3,
    calls_per_month=40_000,
)
def test_support_app(case):
    answer = support.handle(case["ticket"])
    assert answer["category"] in case["categories"], "category must be one the ticket mentions"
    return answer
