"""Reading a large run in the terminal (issue 20.8): the verdict stays at the end, failures are summarised per
model and contract, and pytest's own ``-r`` options still list every failed item."""

from __future__ import annotations

import json

import pytest

CASES = 500
CANDIDATES = ("alpha", "beta", "gamma")


def write_suite(pytester: pytest.Pytester, cases: int) -> None:
    """A JSON contract of ``cases`` cases whose check reads ``ok`` and whose tolerance holds ``category``."""
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n")
    rows = [{"id": f"c{i:04d}", "doc": json.dumps({"category": "bug", "n": i, "ok": i % 5 != 0})}
            for i in range(cases)]
    pytester.makefile(".jsonl", cases="\n".join(json.dumps(r) for r in rows))
    pytester.makepyfile(test_big='''
from pytest_llmswap import llm_contract

@llm_contract(prompt="{{ doc }}", output="json", cases="cases.jsonl", tolerance={"fields": ["category"]})
def test_contract(output):
    assert output.json["ok"], "not ok"
''')


def drift_goldens(pytester: pytest.Pytester) -> None:
    """Goldens the echo candidates drift from: every golden passes its check; 3 in 5 have another category."""
    path = pytester.path / "__llm_goldens__" / "test_big.json"
    data = json.loads(path.read_text())
    for case in data["contracts"]["test_contract"]["cases"].values():
        doc = json.loads(case["samples"][0]["text"])
        doc["ok"] = True
        if doc["n"] % 5 in (1, 2, 3):
            doc["category"] = "billing"
        case["samples"][0]["text"] = json.dumps(doc)
    path.write_text(json.dumps(data))


def test_a_large_run_ends_with_its_verdict_and_one_line_per_candidate(pytester: pytest.Pytester) -> None:
    write_suite(pytester, CASES)
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(
        passed=CASES * 4 // 5, failed=CASES // 5)
    drift_goldens(pytester)
    args = [a for name in CANDIDATES for a in ("--candidate-model", f"{name}=echo")]
    result = pytester.runpytest(*args)
    failed = CASES * 4 // 5  # 1 in 5 broken (the check), 3 in 5 beyond tolerance
    result.assert_outcomes(passed=(CASES - failed) * 3, failed=failed * 3)
    lines = result.outlines
    assert not [line for line in lines if line.startswith("FAILED ")]
    tail = "\n".join(lines[-15:])
    assert "No candidate can replace echo yet (not recommended: alpha, beta and gamma)." in tail, tail
    assert "1200 failed, 300 passed" in lines[-1]  # pytest still counts every failed item
    result.stdout.fnmatch_lines([
        "*= llmswap failed items =*",
        "alpha: 400 of 500 items failed (test_big.py::test_contract: 100 failed checks, 300 beyond tolerance)",
        "beta: 400 of 500 items failed (*)",
        "gamma: 400 of 500 items failed (*)",
        "1,200 FAILED lines left out of the short test summary: pytest -rf lists each failed item*",
        "*= llmswap =*",
    ])


@pytest.mark.parametrize("option", ["-rf", "-ra", "-rA", "-rfE", "-vrf", "--report-chars=f"])
def test_an_explicit_r_option_lists_every_failed_item(pytester: pytest.Pytester, option: str) -> None:
    write_suite(pytester, 60)
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    drift_goldens(pytester)
    result = pytester.runpytest("--candidate-model", "alpha=echo", option)
    result.assert_outcomes(passed=12, failed=48)
    assert len([line for line in result.outlines if line.startswith("FAILED test_big.py::")]) == 48
    assert "llmswap failed items" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*= short test summary info =*", "FAILED test_big.py::test_contract?c0000-alpha? - *"])


def test_addopts_r_is_the_users_choice_too(pytester: pytest.Pytester) -> None:
    write_suite(pytester, 60)
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    drift_goldens(pytester)
    pytester.makefile(".toml", pyproject='[tool.llmswap]\nsemantic = false\n[tool.pytest.ini_options]\naddopts = "-rfE"\n')
    result = pytester.runpytest("--candidate-model", "alpha=echo")
    assert len([line for line in result.outlines if line.startswith("FAILED test_big.py::")]) == 48


def test_a_few_failed_items_keep_their_failed_lines_and_other_failures_always_do(pytester: pytest.Pytester) -> None:
    write_suite(pytester, 10)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 == 2\n")
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "test_big.py")
    drift_goldens(pytester)
    result = pytester.runpytest("--candidate-model", "alpha=echo")  # 8 contract items fail: each is listed
    result.assert_outcomes(passed=2, failed=9)
    assert len([line for line in result.outlines if line.startswith("FAILED ")]) == 9
    assert "llmswap failed items" not in result.stdout.str()

    write_suite(pytester, 20)  # 16 contract items fail: summarised; the plain test keeps its line
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "test_big.py")
    drift_goldens(pytester)
    result = pytester.runpytest("--candidate-model", "alpha=echo")
    result.assert_outcomes(passed=4, failed=17)
    assert [line for line in result.outlines if line.startswith("FAILED ")] == [
        "FAILED test_plain.py::test_plain - assert 1 == 2"]
    result.stdout.fnmatch_lines(["*= llmswap failed items =*", "alpha: 16 of 20 items failed (*)",
                                 "16 FAILED lines left out of the short test summary: pytest -rf lists each*",
                                 "*= llmswap =*", "*= short test summary info =*", "FAILED test_plain.py::test_plain*",
                                 "*= 17 failed, 4 passed in *"])


def test_failed_items_are_counted_by_why_their_cases_failed():
    """Every reason a case fails is named in the per-model line: a failed call, no usable golden, a broken check
    (a regression, or the incumbent's own checks), drift beyond tolerance."""
    from pytest_llmswap.report.terminal import ItemRun, failed_items_lines
    from pytest_llmswap.results import CaseResult, ModelInfo, RunResults

    def case(i: int, candidate: str | None, **outcome) -> CaseResult:
        return CaseResult(contract="t.py::test_x", case_id=f"c{i}", candidate=candidate, variables={}, prompt="p",
                          passed=False, **outcome)

    cases = [case(0, "cand", call_error="503"), case(1, "cand", failure="no golden"),
             case(2, "cand", candidate_passed=False, flip="regression", check_message="assert"),
             case(3, "cand", candidate_passed=True, exceeded=["edit 0.2 < 0.9"]),
             case(4, "cand", candidate_passed=True, exceeded=["edit 0.1 < 0.9"]),
             case(5, None, check_message="assert")]
    results = RunResults(created_at="now", candidates=[ModelInfo(name="cand", spec="echo", kind="echo")],
                         cases=cases)
    items = [ItemRun(c.candidate or "incumbent", c.contract, True) for c in cases]
    items.append(ItemRun("cand", "t.py::test_x", False))
    assert failed_items_lines(items, results, 6)[:2] == [
        "incumbent: 1 of 1 item failed (t.py::test_x: 1 failed check)",
        "cand: 5 of 6 items failed (t.py::test_x: 1 failed call, 1 failed check, 2 beyond tolerance, 1 not judged)",
    ]
