"""Invariance checks (issue 20.7): perturbed inputs planned with the others, recorded in the golden, replayed
offline, asked of each candidate, summarised per model with a Wilson interval and required by a tolerance."""

import json
import random

import numpy as np
import pytest

from pytest_llmswap.verdict.stats import score_interval
from pytest_llmswap.verdict.figures import pct
from pytest_llmswap.contract.invariance import PERTURBATIONS, Invariance

# The echo model answers with the prompt: a template that is JSON makes the answer JSON, whose "category" is the
# case's. Ticket "a" has three sentences; ticket "b" one, so reordering it asks nothing.
CONTRACT = '''prompt='{"category": "{{ cat }}", "note": "{{ text }}"}', output="json",
    cases=[{"id": "a", "cat": "billing", "text": "First thing. Second thing. Third thing."},
           {"id": "b", "cat": "Bug", "text": "Only one sentence here"}]'''
RECORD = ("--incumbent-model", "echo", "--llmswap-record", "new")


def test_perturbations_are_pure_functions_of_the_text_and_the_seed():
    text = "Hello there. I was charged twice!  Please   fix it? Thanks."
    for name, perturb in PERTURBATIONS.items():
        once, again = perturb(text, random.Random("case-1/x")), perturb(text, random.Random("case-1/x"))
        assert once == again and once != text, name
    moved = PERTURBATIONS["reorder_sentences"](text, random.Random(0))
    assert sorted(moved.split()) == sorted(text.split()) and moved != text  # the same sentences, another order
    assert PERTURBATIONS["reorder_sentences"]("One sentence only", random.Random(0)) == "One sentence only"


def test_every_string_field_but_the_id_is_perturbed_and_held_compares_the_named_fields():
    declared = Invariance.declare(["case"], ["category"], json_output=True)
    [(label, variables)] = declared.variants("x", {"id": "x", "a": "Ab", "n": 3, "b": "cD"})
    assert label == "case" and variables["id"] == "x" and variables["n"] == 3
    assert {variables["a"], variables["b"]} <= {"ab", "AB", "cd", "CD"} and variables["a"] != "Ab"
    assert declared.held('{"category": "bug", "x": 1}', '{"x": 2, "category": "bug"}')
    assert not declared.held('{"category": "bug"}', '{"category": "billing"}')
    assert not declared.held('{"category": "bug"}', "not json")
    whole = Invariance.declare({"t": ["whitespace"]}, None, json_output=False)
    assert whole.held("same  answer\n", " same answer") and not whole.held("a", "b")


@pytest.mark.parametrize(("args", "message"), [
    ('invariant=["shuffle"]', "llm_contract(invariant=...): unknown perturbation 'shuffle'; known: case, "
                              "reorder_sentences, whitespace"),
    ('invariant="case"', "llm_contract(invariant='case'): give a list of perturbation names, e.g. "
                         "['reorder_sentences', 'whitespace']"),
    ('invariant_fields=["category"]', "llm_contract(invariant_fields=...) needs invariant=[...]: the perturbations "
                                      "under which those fields must not change"),
    ('invariant=["case"], invariant_fields=["category"]', "llm_contract(invariant_fields=...) names JSON fields: it "
                                                          "needs output='json' (leave it out to require the whole "
                                                          "text unchanged)"),
    ('tolerance={"invariance": 0.9}', "tolerance 'invariance' needs llm_contract(invariant=[...]): the "
                                      "perturbations to ask"),
    ('invariant={"id": ["case"]}', "llm_contract(invariant={'id': ...}): keys are the case fields to perturb "
                                   "(strings, not 'id')"),
])
def test_a_bad_invariance_declaration_is_one_line_at_collection(suite, args, message):
    result = suite(f'prompt="Say {{{{ word }}}}", cases=[{{"id": "a", "word": "hi"}}], {args}').runpytest(*RECORD)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"E   pytest_llmswap.contract.decorator.ContractError: {message}"])


def test_a_named_field_the_case_lacks_is_one_line_at_collection(suite):
    result = suite('prompt="Say {{ word }}", cases=[{"id": "a", "word": "hi"}], invariant={"nope": ["case"]}'
                   ).runpytest(*RECORD)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_suite.py::test_contract: case 'a': invariant field 'nope' is not a string "
                                 "field of the case (case keys: id, word)"])


def test_perturbed_answers_are_recorded_replayed_offline_and_asked_of_each_candidate(suite):
    pytester = suite(CONTRACT + ', invariant=["reorder_sentences", "case"], invariant_fields=["category"], '
                     'tolerance={"invariance": 0.9}',
                     body='assert output.json["category"]')
    pytester.runpytest(*RECORD).assert_outcomes(passed=2)
    golden = json.loads((pytester.path / "__llm_goldens__" / "test_suite.json").read_text())
    cases = golden["contracts"]["test_contract"]["cases"]
    assert sorted(cases["a"]["perturbed"]) == ["case", "reorder_sentences"]
    assert list(cases["b"]["perturbed"]) == ["case"]  # one sentence: reordering leaves the prompt as it is
    assert "Second thing" in cases["a"]["perturbed"]["reorder_sentences"]["sample"]["text"]

    pytester.runpytest().assert_outcomes(passed=2)  # replay: the incumbent's perturbed answers from the golden

    result = pytester.runpytest("--candidate-model", "echo", "--llmswap-json", "out.json",
                                "--llmswap-markdown", "summary.md")
    # Re-casing changes the echoed category: 1 of 2 held on "a", 0 of 1 on "b"; both break invariance >= 0.9.
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*drift beyond tolerance: invariance 1/2 < 0.9: the answer changed under case*"])
    out = json.loads((pytester.path / "out.json").read_text())
    row = next(c for c in out["cases"] if c["case_id"] == "a")
    assert [(o["perturbation"], o["held"]) for o in row["invariance"]] == [("reorder_sentences", True),
                                                                           ("case", False)]
    assert row["exceeded_metrics"] == ["invariance"]
    summaries = out["summaries"]
    interval = score_interval([1 / 2, 0])  # the cases are the units: "a" held 1 of 2, "b" 0 of 1
    expected = {"held": 1, "perturbed": 3, "rate": pytest.approx(1 / 4),
                "ci": [pytest.approx(interval.low), pytest.approx(interval.high)]}
    assert summaries["candidates"]["echo"]["invariance"] == expected
    assert summaries["incumbent"]["invariance"] == expected
    assert (f"**echo** 25.0% [{pct(interval.low)}, {pct(interval.high)}] (1 of 3 held)"
            in (pytester.path / "summary.md").read_text())


def test_a_golden_without_answers_to_newly_declared_perturbations_fails_replay_until_recorded(suite):
    pytester = suite(CONTRACT, body='assert output.json["category"]')
    pytester.runpytest(*RECORD).assert_outcomes(passed=2)
    suite(CONTRACT + ', invariant={"text": ["reorder_sentences"]}', body='assert output.json["category"]')
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # "b" has one sentence: nothing to record for it
    result.stdout.fnmatch_lines(["*golden for case 'a' has no answer to the perturbed input(s) "
                                 "reorder_sentences(text); record them with: pytest --incumbent-model * "
                                 "--llmswap-record new *"])
    pytester.runpytest(*RECORD).assert_outcomes(passed=2)
    pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize(("rate", "cases", "per_case"), [(0.6, 60, 1), (0.9, 60, 1), (0.97, 60, 1), (0.9, 180, 1),
                                                      (0.7, 60, 3), (0.9, 60, 3), (0.97, 60, 3), (0.9, 180, 3)])
def test_the_invariance_interval_covers_the_true_rate_in_simulation(rate, cases, per_case):
    """The interval the report prints, at the sizes of the README's main job (60 tickets) and larger, with one
    perturbation per case and with three that hang together (a case is fragile or not): 1,000 simulated suites,
    coverage at least 94%."""
    rng = np.random.default_rng(20)
    covered = 0
    for _ in range(1_000):
        # Each case has its own chance of holding (mean ``rate``), shared by its perturbations.
        fragile = rng.beta(rate * 4, (1 - rate) * 4, size=cases)
        held = rng.binomial(per_case, fragile)
        interval = score_interval(held / per_case)
        covered += interval.low <= rate <= interval.high
    assert covered / 1_000 >= 0.94
