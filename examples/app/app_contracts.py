"""Contracts for the support application itself (support.py): no prompt in the test, the app's own calls.

Each case calls the application; the value the test returns is what is recorded and compared. Every LLM
call the application makes inside the test is intercepted: answered from the golden (replay, the default,
offline), sent to the incumbent (record) or to each candidate (``--candidate-model``). See docs/app-calls.md.

Not collected yet (the file name does not start with ``test_``): it runs once the plugin wires contracts
without ``prompt=``; then rename it to test_support_app.py and record its goldens with
``pytest examples/app --incumbent-model teacher --llmswap-record new``.
"""

import support

from pytest_llmswap import llm_contract


@llm_contract(
    cases="../data/tickets.jsonl",
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
