"""Measured rework: a candidate's adapted prompt is judged beside the incumbent's own, and the verdict and the
switching cost use the adapted result (docs/cost.md, "Measured rework").

The built-in ``echo`` model answers with the prompt it is asked, so what a prompt wins back is exact here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_llmswap import llm_contract
from pytest_llmswap.contract.decorator import CONTRACT_ATTR, ResolvedContract, resolve
from pytest_llmswap.golden import GoldenCase
from pytest_llmswap.models import backends
from pytest_llmswap.models.spec import SpecError, parse_spec
from pytest_llmswap.results import ContractInfo, ModelInfo, RunResults
from pytest_llmswap.run import execute, plan
from pytest_llmswap.run.judge import Judge
from pytest_llmswap.run.keys import ItemKey, RunError, RunOptions
from pytest_llmswap.run.outcome import Status
from pytest_llmswap.run.state import RunState
from pytest_llmswap.types import ModelCallError, Response
from pytest_llmswap.verdict import aggregate
from pytest_llmswap.verdict.cost import RULE_ADAPTED
from pytest_llmswap.verdict.summaries import DROP_IN, REWORK

NAMES = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo", "Kim", "Lu"]


def greets(output, case):
    assert output.text.startswith("Hello"), "no greeting"


def contract(tmp_path: Path, fn=greets, **kwargs) -> ResolvedContract:
    cases = [{"id": n.lower(), "name": n} for n in NAMES]
    decorated = llm_contract(**{"prompt": "Greet {{ name }}", "cases": cases, **kwargs})(fn)
    return resolve(getattr(decorated, CONTRACT_ATTR), tmp_path / "test_greet.py", "test_greet",
                   "test_greet.py::test_greet")


def candidate(tmp_path: Path, adapted: str | None = "Hello {{ name }}, nice to meet you") -> RunState:
    """A replay of the greeting contract on ``echo`` named ``cand``, with ``adapted`` as its adapted prompt."""
    entry: dict = {"model": "echo"}
    if adapted is not None:
        (tmp_path / "adapted.j2").write_text(adapted)
        entry["prompts"] = {"test_greet": "adapted.j2"}
    spec = parse_spec("cand", {"cand": entry}, tmp_path)
    state = RunState(RunOptions(candidates=(spec,)))
    resolved = contract(tmp_path)
    state.add_contract(resolved)
    for case in resolved.cases:
        state.store.put(resolved.module_path, resolved.key, case.id, GoldenCase(
            prompt_hash=case.prompt_hash, variables=case.variables, messages=[list(m) for m in case.messages],
            model="incumbent", params={}, samples=[Response(f"Hello {case.variables['name']}").to_dict()]))
    return state


def judged(state: RunState) -> RunResults:
    resolved = next(iter(state.contracts.values()))
    keys = [ItemKey(resolved.nodeid, c.id, "cand") for c in resolved.cases]
    state.plan = plan.plan(state, keys)
    state.answers = execute.execute(state, state.plan)
    judge = Judge(state)
    for key in keys:
        state.keep(judge.item(key, greets, {"output": None, "case": None}).cases[0])
    state.close(owner=True)
    return RunResults(created_at="now", candidates=[ModelInfo("cand", "echo", "echo")],
                      contracts=[ContractInfo(resolved.nodeid, rework_hours=3)], cases=state.results,
                      settings={"max_regression_rate": 0.3})  # 12 cases bound no 0 breaks under 5%


def test_the_candidate_is_asked_both_prompts_and_judged_on_its_adapted_one(tmp_path):
    state = candidate(tmp_path)
    results = judged(state)
    [request] = state.plan.requests[ItemKey("test_greet.py::test_greet", "ada", "cand")]
    assert request.messages[-1][1] == "Hello Ada, nice to meet you"
    assert state.plan.unadapted[ItemKey("test_greet.py::test_greet", "ada", "cand")].messages[-1][1] == "Greet Ada"
    case = results.cases[0]
    assert case.held and case.prompt == "Hello Ada, nice to meet you"
    assert case.unadapted is not None and not case.unadapted.held
    assert case.unadapted.flip == "regression" and case.unadapted.check_message.startswith("no greeting")
    assert case.unadapted.output.text == "Greet Ada"


def test_the_verdict_reads_the_adapted_result_and_says_what_the_prompt_won_back(tmp_path):
    summaries = aggregate.summarize(judged(candidate(tmp_path)))
    student = summaries.candidates["cand"]
    assert student.regressions == 0 and student.passed == len(NAMES)
    assert student.adaptation is not None and student.adaptation.contracts == ("test_greet.py::test_greet",)
    assert student.adaptation.before.regressions == len(NAMES) and student.adaptation.passed_before == 0
    assert student.adaptation.won_back(student) == len(NAMES)
    verdict = summaries.verdicts["cand"]
    # Drop-in on its adapted prompt, yet adopting it needs the adaptation: a measured rework, not a drop-in.
    assert verdict.verdict == REWORK and verdict.rule == RULE_ADAPTED
    assert "with its adapted prompt for test_greet.py::test_greet" in verdict.headline
    [measured] = [r for r in verdict.reasons if r.startswith("measured rework")]
    assert "on the incumbent's prompt not recommended, broken-case rate 100.0%" in measured
    assert f"wins back {len(NAMES)} of its {len(NAMES)}" in measured
    switching = summaries.switching["cand"]
    assert switching.rework_hours == 3 and switching.contracts["test_greet.py::test_greet"].adapted


def test_an_adapted_prompt_that_breaks_more_is_shown_as_such(tmp_path):
    summaries = aggregate.summarize(judged(candidate(tmp_path, adapted="Bye {{ name }}")))
    cand = summaries.candidates["cand"]
    # The incumbent's own prompt echoes "Greet ..." too, so both fail: nothing won back, all broken.
    assert cand.regressions == len(NAMES) and cand.adaptation.won_back(cand) == 0
    assert summaries.verdicts["cand"].verdict != DROP_IN


def test_without_an_adapted_prompt_nothing_is_asked_twice(tmp_path):
    state = candidate(tmp_path, adapted=None)
    results = judged(state)
    assert state.plan.unadapted == {} and all(c.unadapted is None for c in results.cases)
    assert aggregate.summarize(results).candidates["cand"].adaptation is None


def _judged_case(tmp_path, adapted: Response | ModelCallError, incumbents: Response | ModelCallError):
    """Case ``ada`` on the candidate, its adapted prompt answered with ``adapted`` and the incumbent's prompt with
    ``incumbents``."""
    state = candidate(tmp_path)
    resolved = next(iter(state.contracts.values()))
    key = ItemKey(resolved.nodeid, "ada", "cand")
    state.plan = plan.plan(state, [key])
    state.answers = execute.Answers(responses={state.plan.requests[key][0].key: adapted,
                                               state.plan.unadapted[key].key: incumbents})
    outcome = Judge(state).item(key, greets, {"output": None, "case": None})
    state.close(owner=True)
    [case] = outcome.cases
    return case


def test_a_failed_call_on_the_incumbents_prompt_is_kept_and_the_row_still_judged(tmp_path):
    case = _judged_case(tmp_path, Response("Hello Ada"), ModelCallError("echo: 503 Service Unavailable"))
    assert case.status is Status.PASSED and case.result.unadapted.call_error == "echo: 503 Service Unavailable"
    assert not case.result.unadapted.held


def test_the_adapted_result_survives_the_json_file(tmp_path):
    results = judged(candidate(tmp_path))
    again = RunResults.from_dict(json.loads(json.dumps(results.to_dict())))
    assert again.cases[0].unadapted == results.cases[0].unadapted
    assert aggregate.summarize(again).candidates["cand"].adaptation.won_back(
        aggregate.summarize(again).candidates["cand"]) == len(NAMES)


@pytest.mark.parametrize("prompts, message", [
    ("triage.j2", "prompts must be a table of contract name = template file"),
    ({"test_greet": 3}, "prompts must be a table of contract name = template file"),
    ({"test_greet": "missing.j2"}, "prompts.test_greet: template file not found"),
])
def test_a_bad_prompts_table_is_one_line_naming_the_model(tmp_path, prompts, message):
    with pytest.raises(SpecError) as info:
        parse_spec("cand", {"cand": {"model": "echo", "prompts": prompts}}, tmp_path)
    assert str(info.value).startswith("[tool.llmswap.models.cand]: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_prompts_entry_naming_no_contract_is_a_warning_before_any_call(tmp_path):
    (tmp_path / "adapted.j2").write_text("Hello {{ name }}")
    spec = parse_spec("cand", {"cand": {"model": "echo", "prompts": {"test_gret": "adapted.j2"}}}, tmp_path)
    state = RunState(RunOptions(candidates=(spec,)))
    state.add_contract(contract(tmp_path))
    warnings = plan.plan(state, []).warnings
    state.close(owner=True)
    assert warnings == ("cand: prompts.test_gret names no collected contract (contracts: test_greet); its adapted "
                        "prompt is not used",)


@pytest.mark.parametrize("kwargs, kind", [({"prompt": None}, "application calls"),
                                          ({"prompt": None, "messages": [{"role": "user", "content": "Hi"}]},
                                           "messages=[...]")])
def test_an_adapted_prompt_for_a_contract_without_prompt_is_refused_before_any_call(tmp_path, kwargs, kind):
    (tmp_path / "adapted.j2").write_text("Hello {{ name }}")
    spec = parse_spec("cand", {"cand": {"model": "echo", "prompts": {"test_greet": "adapted.j2"}}}, tmp_path)
    state = RunState(RunOptions(candidates=(spec,)))
    resolved = contract(tmp_path, **kwargs)
    state.add_contract(resolved)
    with pytest.raises(RunError, match=re.escape(f"cand: adapted prompt: test_greet.py::test_greet: ") + f".* has {re.escape(kind)}"):
        plan.plan(state, [ItemKey(resolved.nodeid, "ada", "cand")])
    state.close(owner=True)


def test_a_local_checkpoint_retrained_in_its_folder_is_another_model_for_the_response_store(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"first weights")
    before = parse_spec(f"hf:{folder}", {})
    (folder / "model.safetensors").write_bytes(b"second weights, retrained")
    after = parse_spec(f"hf:{folder}", {})
    assert before.revision and after.revision and before.revision != after.revision
    assert before.identity != after.identity
    # An API model has no revision: its identity, and so every stored answer's key, is as before.
    api = parse_spec("openai/gpt-4o-mini", {})
    assert api.revision == "" and json.loads(api.identity) == ["litellm", "openai/gpt-4o-mini", [], {}]
    assert backends.find("hf").revision(str(tmp_path / "absent")) == ""


def test_a_run_with_an_adapted_prompt_shows_before_and_after_in_every_report(pytester):
    """Through the plugin, echo on both sides: the goldens and the candidate's answers to the contract's own prompt
    hold; its adapted prompt breaks every case, and every report says so."""
    pytester.makepyfile(test_greet=f'''
from pytest_llmswap import llm_contract

@llm_contract(prompt="Greet {{{{ name }}}}", cases=[{{"id": n.lower(), "name": n}} for n in {NAMES!r}],
              rework_hours=3, calls_per_month=1000)
def test_greet(output, case):
    assert output.text.startswith("Greet"), "no greeting"
''')
    pytester.path.joinpath("adapted.j2").write_text("Bye {{ name }}")
    pytester.makefile(".toml", pyproject='''
[tool.llmswap]
max_regression_rate = 0.3
semantic = false

[tool.llmswap.models.cand]
model = "echo"
prompts = { test_greet = "adapted.j2" }
''')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "all").assert_outcomes(passed=len(NAMES))
    result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json", "out.json", "--llmswap-markdown",
                                "out.md", "--llmswap-report", "out.html")
    result.assert_outcomes(failed=len(NAMES))
    line = ("  measured rework: on the incumbent's prompt drop-in, broken-case rate 0.0% [0.0%, 26.5%]; the adapted "
            f"prompt breaks {len(NAMES)} more cases ({len(NAMES)} broken in all)")
    result.stdout.fnmatch_lines(["cand: not recommended: *", line, "  cost: *rework $300.00 (your estimates, the "
                                 "adaptation included)*"])
    out = json.loads((pytester.path / "out.json").read_text())
    [case] = [c for c in out["cases"] if c["case_id"] == "ada"]
    assert case["prompt"] == "Bye Ada" and case["unadapted"]["prompt"] == "Greet Ada"
    assert case["unadapted"]["candidate_passed"] and case["notes"]["incumbent's prompt"] == (
        "held on the incumbent's prompt too")
    assert out["candidates"][0]["prompts"] == {"test_greet": "adapted.j2"}
    assert line.strip().replace("[", "\\[").replace("]", "\\]") in (pytester.path / "out.md").read_text()
    html = (pytester.path / "out.html").read_text()
    assert "Adapted prompt</dt><dd>broken cases 0 on the incumbent's prompt, 12 on its own" in html
    assert re.search(r"held on the incumbent&#39;s prompt too, answering <code>Greet [A-Z][a-z]+</code>", html)


def test_a_failed_call_on_the_adapted_prompt_keeps_the_answer_to_the_incumbents_prompt(tmp_path):
    case = _judged_case(tmp_path, ModelCallError("echo: empty answer"), Response("Hello Ada"))
    assert case.status is Status.FAILED_CALL and case.result.call_error == "echo: empty answer"
    assert case.result.unadapted.held and case.result.unadapted.output.text == "Hello Ada"
    assert not case.result.held  # a failed call is a failed case for the row, whatever the other prompt did
