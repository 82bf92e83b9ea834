"""The run core without pytest: planning, executing and judging a case into an outcome, as plain calls."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_llmswap import llm_contract
from pytest_llmswap.contract.decorator import CONTRACT_ATTR, ResolvedContract, resolve
from pytest_llmswap.golden import GoldenCase
from pytest_llmswap.models.spec import parse_spec
from pytest_llmswap.run import execute, plan
from pytest_llmswap.run.judge import Judge
from pytest_llmswap.run.keys import ALL_CASES, ItemKey, RunOptions
from pytest_llmswap.run.outcome import Status
from pytest_llmswap.run.state import Answers, Plan, RunState
from pytest_llmswap.types import ModelCallError, Response

GOLDEN = "Hello there, friend"
ECHO = parse_spec("echo", {})


def contract_of(fn, tmp_path: Path, **kwargs) -> ResolvedContract:
    decorated = llm_contract(prompt="Greet {{ name }}", cases=[{"id": "ada", "name": "Ada"}], **kwargs)(fn)
    return resolve(getattr(decorated, CONTRACT_ATTR), tmp_path / "test_greet.py", "test_greet",
                   "test_greet.py::test_greet")


def candidate_state(resolved: ResolvedContract, answer: Response | ModelCallError) -> tuple[RunState, ItemKey]:
    """A replay of one case on the candidate ``echo``: its golden stored, its answer as if just called."""
    state = RunState(RunOptions(candidates=(ECHO,)))
    state.add_contract(resolved)
    case = resolved.cases[0]
    state.store.put(resolved.module_path, resolved.key, case.id, GoldenCase(
        prompt_hash=case.prompt_hash, variables=case.variables, messages=[list(m) for m in case.messages],
        model="incumbent", params={}, samples=[Response(GOLDEN).to_dict()]))
    key = ItemKey(resolved.nodeid, case.id, ECHO.name)
    state.plan = plan.plan(state, [key])
    state.answers = Answers(responses={state.plan.requests[key][0].key: answer})
    return state, key


def judged(fn, tmp_path: Path, answer: Response | ModelCallError, **kwargs):
    state, key = candidate_state(contract_of(fn, tmp_path, **kwargs), answer)
    try:
        return Judge(state).item(key, fn, {"output": None})
    finally:
        state.close(owner=True)


def test_an_answer_that_keeps_the_checks_and_the_tolerance_passes(tmp_path):
    def check(output):
        assert "Hello" in output.text

    outcome = judged(check, tmp_path, Response(GOLDEN))
    assert outcome.passed and outcome.exception is None and outcome.message is None
    [case] = outcome.cases
    assert case.status is Status.PASSED and case.result.passed and case.result.flip is None
    assert case.result.metrics["exact"] == 1.0


def test_a_judged_case_result_is_frozen(tmp_path):
    def check(output):
        assert output.text.startswith("Hello"), "no greeting"

    [case] = judged(check, tmp_path, Response("Goodbye")).cases
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.result.passed = True  # type: ignore[misc]
    again = dataclasses.replace(case.result, passed=True)
    assert again.passed and not case.result.passed and again.check_message == case.result.check_message


def test_a_check_failing_where_the_incumbent_passed_is_broken_and_reraises_the_assertion(tmp_path):
    def check(output):
        assert output.text.startswith("Hello"), "no greeting"

    outcome = judged(check, tmp_path, Response("Goodbye"))
    [case] = outcome.cases
    assert case.status is Status.BROKEN and case.result.flip == "regression"
    assert isinstance(outcome.exception, AssertionError) and "no greeting" in str(outcome.exception)
    assert case.reasons == (case.result.check_message,) and case.result.check_message.startswith("no greeting")
    assert not case.result.passed and case.result.candidate_passed is False


def test_a_check_failing_where_the_incumbent_failed_too_is_a_failed_check_not_broken(tmp_path):
    def check(output):
        assert output.text == "never", "wrong"

    outcome = judged(check, tmp_path, Response("Goodbye"))
    assert outcome.cases[0].status is Status.CHECK_FAILED and outcome.cases[0].result.flip is None
    assert isinstance(outcome.exception, AssertionError)


def test_drift_beyond_tolerance_fails_with_its_reasons_and_no_exception(tmp_path):
    def check(output):
        pass

    outcome = judged(check, tmp_path, Response("Hello there, enemy of mine"), tolerance={"edit": 0.95})
    [case] = outcome.cases
    assert case.status is Status.BEYOND_TOLERANCE and case.result.exceeded_metrics == ["edit"]
    assert case.reasons == tuple(case.result.exceeded) and len(case.reasons) == 1
    assert outcome.exception is None and outcome.message == "drift beyond tolerance: " + case.reasons[0]
    assert case.result.candidate_passed is True and not case.result.passed


def test_a_failed_call_fails_the_case_with_its_error_and_runs_no_check(tmp_path):
    def check(output):
        raise AssertionError("the check must not run on a failed call")

    outcome = judged(check, tmp_path, ModelCallError("timed out after 60 s"))
    [case] = outcome.cases
    assert case.status is Status.FAILED_CALL and outcome.exception is None
    assert outcome.message == "model call failed: timed out after 60 s" == case.result.failure
    assert case.result.call_error == "timed out after 60 s" and case.result.output is None


def test_a_candidate_without_a_golden_is_not_judged_and_says_how_to_record(tmp_path):
    def check(output):
        pass

    state = RunState(RunOptions(candidates=(ECHO,)))
    state.add_contract(resolved := contract_of(check, tmp_path))
    key = ItemKey(resolved.nodeid, resolved.cases[0].id, ECHO.name)
    state.plan = Plan()
    outcome = Judge(state).item(key, check, {"output": None})
    assert outcome.cases[0].status is Status.NOT_JUDGED
    assert outcome.message.startswith("no golden for case 'ada' to compare echo against; record it with: pytest")


def test_recording_on_echo_plans_executes_and_returns_the_golden_to_keep(tmp_path):
    def check(output):
        assert "Ada" in output.text

    state = RunState(RunOptions(incumbent=ECHO, incumbent_text="echo", record="new"))
    resolved = contract_of(check, tmp_path)
    state.add_contract(resolved)
    [(key, test_id)] = plan.items(state, resolved)
    assert test_id == "ada" and key.model is None
    try:
        state.plan = plan.plan(state, [key])
        state.answers = execute.execute(state, state.plan)
        outcome = Judge(state).item(key, check, {"output": None})
    finally:
        state.close(owner=True)
    [case] = outcome.cases
    assert case.status is Status.PASSED and case.recording is not None
    assert case.recording.recorded_by == "echo" and "Ada" in case.recording.samples[0]["text"]
    state.keep(case)
    assert state.results == [case.result]
    assert state.store.get(resolved.module_path, resolved.key, "ada") == case.recording


def test_a_statistical_row_is_judged_on_all_its_cases(tmp_path):
    def check(output):
        assert output.text.startswith("Hello")

    resolved = contract_of(check, tmp_path, min_pass_rate=0.9)
    state, _ = candidate_state(resolved, Response("Goodbye"))
    outcome = Judge(state).item(ItemKey(resolved.nodeid, ALL_CASES, ECHO.name), check, {"output": None})
    state.close(owner=True)
    assert [c.status for c in outcome.cases] == [Status.BROKEN]
    assert outcome.exception is None and outcome.message.startswith("pass rate 0/1")

