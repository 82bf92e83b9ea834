"""A failing deepeval check reads as one line (issue 20.8), tested without deepeval: a stand-in package with
deepeval's interface (``BaseMetric``, ``LLMTestCase``, ``MissingTestCaseParamsError``). tests/test_deepeval.py
runs the same contract on the real deepeval, in CI's environment of its own."""

from __future__ import annotations

import pytest

FAKE_DEEPEVAL = {
    "deepeval/__init__.py": "",
    "deepeval/errors.py": "class MissingTestCaseParamsError(Exception):\n    pass\n",
    "deepeval/metrics.py": "class BaseMetric:\n    threshold = 0.5\n    score = None\n    reason = None\n"
                           "    success = None\n    error = None\n",
    "deepeval/test_case.py": "from dataclasses import dataclass\n\n\n@dataclass\nclass LLMTestCase:\n"
                             "    input: str\n    actual_output: str | None = None\n"
                             "    expected_output: str | None = None\n",
}

SUITE = '''
from deepeval.metrics import BaseMetric
from judges import Judge
from pytest_llmswap import llm_contract


class WordLimit(BaseMetric):
    threshold = 1.0

    def measure(self, test_case):
        self.score = 1.0 if len(test_case.actual_output.split()) <= 3 else 0.0
        self.reason = "too long" if self.score < 1 else None
        self.success = self.score >= 1.0
        return self.score

    def is_successful(self):
        return bool(self.success)

    @property
    def __name__(self):
        return "Word Limit"


@llm_contract(prompt="{{ text }}", cases=[{"id": "short", "text": "one two"}, {"id": "long", "text": "a b c d e"}],
              checks=[WordLimit()])
def test_words(output):
    assert output.text


@llm_contract(prompt="{{ text }}", cases=[{"id": "any", "text": "one"}], checks=[Judge()])
def test_judged(output):
    assert output.text
'''

# A metric of a library (as deepeval's own are): defined outside the test module.
JUDGE = '''
from deepeval.metrics import BaseMetric


class Judge(BaseMetric):
    def measure(self, test_case):
        raise RuntimeError("the judge needs OPENAI_API_KEY")

    def is_successful(self):
        return False

    @property
    def __name__(self):
        return "Judge"
'''


@pytest.fixture
def deepeval_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n")
    for path, text in FAKE_DEEPEVAL.items():
        (pytester.path / path).parent.mkdir(exist_ok=True)
        (pytester.path / path).write_text(text)
    pytester.makepyfile(test_contract=SUITE, judges=JUDGE)
    pytester.syspathinsert()
    return pytester


def failure_block(output: str, title: str) -> list[str]:
    """The lines of one item's block in pytest's FAILURES section, after its title line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("__") and f" {title} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("__", "==")))
    return [line for line in lines[start + 1:end] if line.strip()]


def test_a_failing_deepeval_check_is_one_line(deepeval_suite: pytest.Pytester) -> None:
    recorded = deepeval_suite.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "-k", "words")
    recorded.assert_outcomes(passed=1, failed=1)  # the incumbent's long answer fails its check too
    result = deepeval_suite.runpytest("--candidate-model", "echo", "-k", "words", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert failure_block(out, "test_words[long-echo]") == ["deepeval check failed: Word Limit scored 0.0 (too long)"]
    assert "checks.py" not in out and "raise " not in out and "pytest_llmswap" not in out
    # the short test summary's line, cut to the terminal's width, names no class of the plugin
    result.stdout.fnmatch_lines(["FAILED test_contract.py::test_words?long-echo? - Failed: deepeval check*"])
    import json

    cases = {c["case_id"]: c for c in json.loads((deepeval_suite.path / "out.json").read_text())["cases"]}
    assert cases["long"]["check_message"] == "deepeval check failed: Word Limit scored 0.0 (too long)"
    assert cases["long"]["metrics"]["deepeval:Word Limit"] == 0.0


def test_with_k_samples_the_line_names_the_sample(deepeval_suite: pytest.Pytester) -> None:
    result = deepeval_suite.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "--llmswap-samples", "2",
                                      "-k", "words")
    result.assert_outcomes(passed=1, failed=1)
    assert failure_block(result.stdout.str(), "test_words[long]") == [
        "sample 1 of 2: deepeval check failed: Word Limit scored 0.0 (too long)"]


def test_a_metric_that_raises_shows_its_own_error_not_the_checks_frames(deepeval_suite: pytest.Pytester) -> None:
    result = deepeval_suite.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "-k", "judged")
    result.assert_outcomes(failed=1)
    block = "\n".join(failure_block(result.stdout.str(), "test_judged[any]"))
    assert "RuntimeError: the judge needs OPENAI_API_KEY" in block and "judges.py:" in block
    assert "checks.py" not in block and "deepeval.py" not in block, block
