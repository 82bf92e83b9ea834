"""Issue 19.2: goldens name the configured model that recorded them, and a replay prices it as configured."""

from __future__ import annotations

import json

import pytest

from pytest_llmswap.verdict.cost import _unpriced_reason
from pytest_llmswap.golden import GoldenCase, dump_golden_file, load_golden_file
from pytest_llmswap.verdict.pricing import Pricing
from pytest_llmswap.results import ModelInfo

# Echo answers with the prompt: "Say hi" is 2 input and 2 output tokens. The prices are far from litellm's table.
PYPROJECT = """
[tool.llmswap]
semantic = false
[tool.llmswap.models.teacher]
model = "echo"
input_per_mtok = 1000.0
output_per_mtok = 3000.0
api_key = "sk-secret-never-in-goldens"
[tool.llmswap.models.cheap]
model = "echo"
input_per_mtok = 1.0
output_per_mtok = 1.0
"""
SUITE = """
from pytest_llmswap import llm_contract

@llm_contract(prompt="Say {{ word }}", cases=[{"id": "a", "word": "hi"}], calls_per_month=1_000_000)
def test_say(output, case):
    assert output.text
"""


@pytest.fixture
def recorded(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_say=SUITE)
    pytester.runpytest("--incumbent-model", "teacher", "--llmswap-record", "new").assert_outcomes(passed=1)
    return pytester


def test_the_golden_names_its_recorder_and_never_its_key(recorded):
    text = (recorded.path / "__llm_goldens__" / "test_say.json").read_text()
    assert '"recorded_by": "teacher"' in text and "sk-secret" not in text


def test_a_compare_run_prices_the_incumbent_as_configured(recorded):
    result = recorded.runpytest("--candidate-model", "cheap", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=1)
    data = json.loads((recorded.path / "out.json").read_text())
    assert data["incumbent"]["name"] == "teacher" and data["incumbent"]["prices"]["input_per_mtok"] == 1000.0
    switching = data["summaries"]["switching"]["cheap"]
    # 1M calls x (2 x $1000 + 2 x $3000) per million tokens = $8000; echo's recorded cost ($0) is not used
    assert switching["incumbent_monthly_usd"] == pytest.approx(8000.0)
    assert switching["unpriced_reason"] is None


def test_goldens_recorded_before_the_field_stay_readable(tmp_path):
    case = GoldenCase(prompt_hash="h", variables={}, messages=[], model="m", params={}, samples=[{"text": "x"}])
    path = tmp_path / "g.json"
    path.write_text(dump_golden_file({"k": {"c": case}}))
    assert "recorded_by" not in path.read_text()  # an old golden re-written stays byte-identical
    assert load_golden_file(path)["k"]["c"].recorded_by == ""


@pytest.mark.parametrize(("who", "info", "fix"), [
    ("incumbent", ModelInfo("teacher", "openai/x", "litellm", resolved_id="x-2024"),
     "the incumbent teacher has no configured price and litellm's table has no price for x-2024: set "
     "input_per_mtok and output_per_mtok (or gpu_hour_usd) in [tool.llmswap.models.teacher]"),
    ("candidate", ModelInfo("openai/y", "openai/y", "litellm"),
     'in a [tool.llmswap.models.NAME] with model = "openai/y", and pass NAME instead of the spec'),
    ("incumbent", ModelInfo("incumbent", "(goldens)", "golden"),
     "the incumbent's goldens do not name a configured model: pass --incumbent-model NAME"),
    ("incumbent", ModelInfo("local", "hf:./t", "hf", prices={"gpu_hour_usd": 0.4}),
     "(pass --incumbent-model local so it is measured)"),
])
def test_the_unpriced_hint_names_the_exact_fix(who, info, fix):
    assert fix in _unpriced_reason([(who, Pricing.of(info.prices), info)])
