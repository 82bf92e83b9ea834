"""The optional deepeval integration. Run with ``-p no:deepeval``: deepeval's own pytest plugin costs
seconds per run and imports deepeval before the telemetry opt-out can be set."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("deepeval") is not None:
    import pytest_llmswap.deepeval  # noqa: F401  (first, so deepeval is imported with telemetry off)
pytest.importorskip("deepeval")

from deepeval.errors import MissingTestCaseParamsError  # noqa: E402
from deepeval.metrics import BaseMetric  # noqa: E402
from deepeval.test_case import LLMTestCase  # noqa: E402

from pytest_llmswap.deepeval import DriftMetric, _telemetry_opt_out_value, evaluate_metrics  # noqa: E402
from pytest_llmswap.drift.text import edit_similarity  # noqa: E402

GOLDEN = "The ticket is about billing; route it to the finance team."
CLOSE = "The ticket is about billing, route it to the finance team."
FAR = "Penguins huddle together to survive the Antarctic winter."


class WordLimit(BaseMetric):
    """A user's custom deepeval metric with no LLM judge: passes when the answer has at most N words."""

    def __init__(self, limit: int, threshold: float = 1.0) -> None:
        self.limit = limit
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase) -> float:  # no _show_indicator: a plain custom metric
        words = len(test_case.actual_output.split())
        self.score = 1.0 if words <= self.limit else 0.0
        self.reason = f"{words} words (limit {self.limit})"
        self.success = self.score >= self.threshold
        return self.score

    async def a_measure(self, test_case: LLMTestCase) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success)

    @property
    def __name__(self) -> str:
        return "Word Limit"


def test_drift_metric_scores_edit_similarity_with_deepeval_threshold_semantics() -> None:
    metric = DriftMetric(threshold=0.9)
    case = LLMTestCase(input="triage", actual_output=CLOSE, expected_output=GOLDEN)
    assert metric.measure(case) == pytest.approx(edit_similarity(GOLDEN, CLOSE))
    assert metric.is_successful() is True
    assert "within" in metric.reason and "0.9" in metric.reason
    assert 0.0 <= metric.score_breakdown["style_distance"] <= 1.0

    metric.measure(LLMTestCase(input="triage", actual_output=FAR, expected_output=GOLDEN))
    assert metric.score < 0.5
    assert metric.is_successful() is False
    assert "beyond" in metric.reason


def test_strict_mode_demands_a_perfect_score() -> None:
    metric = DriftMetric(threshold=0.5, strict_mode=True)
    assert metric.threshold == 1.0
    metric.measure(LLMTestCase(input="x", actual_output=CLOSE, expected_output=GOLDEN))
    assert metric.is_successful() is False
    metric.measure(LLMTestCase(input="x", actual_output=GOLDEN, expected_output=GOLDEN))
    assert metric.is_successful() is True


def test_drift_metric_needs_an_expected_output() -> None:
    with pytest.raises(MissingTestCaseParamsError):
        DriftMetric().measure(LLMTestCase(input="x", actual_output="y"))
    with pytest.raises(ValueError):
        DriftMetric(kind="bleu")  # type: ignore[arg-type]


def test_drift_metric_runs_async() -> None:
    import asyncio

    metric = DriftMetric(threshold=0.9)
    case = LLMTestCase(input="x", actual_output=CLOSE, expected_output=GOLDEN)
    assert asyncio.run(metric.a_measure(case)) == pytest.approx(edit_similarity(GOLDEN, CLOSE))


def test_drift_metric_semantic_uses_the_given_scorer() -> None:
    class Scorer:
        def similarity(self, a: str, b: str) -> float:
            return -0.25  # a negative cosine is clamped into deepeval's [0, 1]

    metric = DriftMetric(threshold=0.1, kind="semantic", scorer=Scorer())  # type: ignore[arg-type]
    assert metric.measure(LLMTestCase(input="x", actual_output=FAR, expected_output=GOLDEN)) == 0.0
    assert metric.__name__ == "LLMSwap Drift (semantic)"


def test_drift_metric_in_assert_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepeval import assert_test

    monkeypatch.chdir(tmp_path)  # deepeval keeps run files in ./.deepeval ...
    (tmp_path / ".deepeval").mkdir()  # ... which deepeval 2.x creates at import only

    assert_test(LLMTestCase(input="x", actual_output=CLOSE, expected_output=GOLDEN),
                [DriftMetric(threshold=0.9)], run_async=False)
    with pytest.raises(AssertionError):
        assert_test(LLMTestCase(input="x", actual_output=FAR, expected_output=GOLDEN),
                    [DriftMetric(threshold=0.9)], run_async=False)


def test_evaluate_metrics_as_contract_checks() -> None:
    results = evaluate_metrics([WordLimit(5), WordLimit(50), DriftMetric(threshold=0.9)],
                               input="triage this", actual_output=CLOSE, expected_output=GOLDEN)
    assert list(results) == ["Word Limit", "Word Limit #2", "LLMSwap Drift (edit)"]
    assert results["Word Limit"] == {"score": 0.0, "passed": False, "reason": "11 words (limit 5)"}
    assert results["Word Limit #2"]["passed"] is True
    assert results["LLMSwap Drift (edit)"]["passed"] is True
    assert isinstance(results["LLMSwap Drift (edit)"]["score"], float)


def test_evaluate_metrics_propagates_a_metric_error() -> None:
    class Broken(WordLimit):
        def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
            raise RuntimeError("judge unavailable")

    with pytest.raises(RuntimeError, match="judge unavailable"):
        evaluate_metrics([Broken(3)], input="x", actual_output="y")


def test_telemetry_opt_out_is_set_before_deepeval_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEEPEVAL_TELEMETRY_OPT_OUT"}
    code = ("import os, pytest_llmswap.deepeval; print(os.environ['DEEPEVAL_TELEMETRY_OPT_OUT']); "
            "from deepeval.telemetry import telemetry_opt_out; print(bool(telemetry_opt_out()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [_telemetry_opt_out_value(), "True"]


def test_telemetry_opt_out_respects_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import pytest_llmswap.deepeval as module

    monkeypatch.setenv("DEEPEVAL_TELEMETRY_OPT_OUT", "0")
    importlib.reload(module)
    assert os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] == "0"


def test_deepeval_metrics_as_contract_checks_fail_items_and_reach_the_results(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n")
    pytester.makepyfile(test_contract='''
from deepeval.metrics import BaseMetric
from pytest_llmswap import llm_contract
from pytest_llmswap.deepeval import DriftMetric


class WordLimit(BaseMetric):
    threshold = 1.0

    def measure(self, test_case):
        self.score = 1.0 if len(test_case.actual_output.split()) <= 3 else 0.0
        self.reason = "too long" if self.score < 1 else None
        self.success = self.score >= 1.0
        return self.score

    async def a_measure(self, test_case):
        return self.measure(test_case)

    def is_successful(self):
        return bool(self.success)

    @property
    def __name__(self):
        return "Word Limit"


@llm_contract(prompt="{{ text }}", cases=[{"id": "short", "text": "one two"}, {"id": "long", "text": "a b c d e"}],
              checks=[WordLimit(), DriftMetric(threshold=0.9)])
def test_words(output):
    assert output.text
''')
    pytester.runpytest_subprocess("-p", "no:deepeval", "--incumbent-model", "echo", "--llmswap-record", "new")
    result = pytester.runpytest_subprocess("-p", "no:deepeval", "--candidate-model", "echo",
                                           "--llmswap-json", "out.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*deepeval check failed: Word Limit scored 0.0 (too long)*"])
    import json

    cases = {c["case_id"]: c for c in json.loads((pytester.path / "out.json").read_text())["cases"]}
    assert cases["short"]["metrics"]["deepeval:Word Limit"] == 1.0
    assert cases["long"]["metrics"]["deepeval:Word Limit"] == 0.0
    [drift_key] = [k for k in cases["short"]["metrics"] if k.startswith("deepeval:") and "Word" not in k]
    assert cases["short"]["metrics"][drift_key] == 1.0  # the echo candidate equals its golden
    assert cases["long"]["golden_passes"] == 0 and cases["long"]["flip"] is None
