"""Issue 18: no pass without answers, and one line (never an INTERNALERROR) for what a bad day brings.

Inner pytest sessions against the fault-injecting server (``openai_server.py``) or ``echo``: each test states
the outcome, the one line the user reads and what is (not) on disk afterwards.
"""

from __future__ import annotations

import pytest

from openai_server import chat_server
from test_faults import FAST, answer, goldens, one_failure_line


def statistical_suite(pytester: pytest.Pytester, url: str) -> None:
    """Four cases; the contract bounds regressions only (the documented ``min_pass_rate=0`` form)."""
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false
[tool.llmswap.models.prod]
model = "openai/prod-model"
api_base = "{url}"
api_key = "sk-test"
[tool.llmswap.models.cand]
model = "openai/cand-model"
api_base = "{url}"
api_key = "sk-test"
""")
    pytester.makepyfile(test_qa="""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{ q }}", cases=[{"id": q, "q": q} for q in ("a", "b", "c", "d")],
              min_pass_rate=0, max_regression_rate=0.5)
def test_qa(output, case):
    assert output.text.startswith("answer to")
""")


@pytest.mark.parametrize("failing", ["every", "one"])
def test_a_statistical_contract_whose_calls_failed_never_passes(pytester, litellm_loaded, failing):
    """Record and candidate: min_pass_rate=0 cannot fail, so failed calls must fail the row themselves."""
    fails = (lambda prompt: "500") if failing == "every" else (lambda prompt: "500" if "b" in prompt[-1] else None)
    with chat_server(answer, fault_for=fails) as server:
        statistical_suite(pytester, server.url)
        record = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST)
        record.assert_outcomes(failed=1)
        assert record.ret == 1
        count = "4 of 4" if failing == "every" else "1 of 4"
        line = one_failure_line(record, "could not record")
        assert f"could not record {count} cases (first: prod: InternalServerError after 2 attempt(s)" in line
        assert set(goldens(pytester)) == (set() if failing == "every" else {"a", "c", "d"})
    if failing == "one":  # the candidate row: the golden of b is missing, so record it on a healthy server
        with chat_server(answer) as healthy:
            statistical_suite(pytester, healthy.url)
            pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST).assert_outcomes(passed=1)
        with chat_server(answer, fault_for=fails) as server:
            statistical_suite(pytester, server.url)
            run = pytester.runpytest("--candidate-model", "cand", *FAST)
            run.assert_outcomes(failed=1)
            assert run.ret == 1
            assert "got no answer for 1 of 4 cases (first: cand: InternalServerError" in one_failure_line(
                run, "got no answer for")
