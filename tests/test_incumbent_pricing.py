"""Issue 19.2: goldens name the configured model that recorded them, and a replay prices it as configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmswap.verdict.cost import _unpriced_reason
from pytest_llmswap.golden import GoldenCase, dump_golden_file, load_golden_file
from pytest_llmswap.verdict.pricing import Pricing
from pytest_llmswap.results import ModelInfo
from pytest_llmswap.types import Prices

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
    ("incumbent", ModelInfo("local", "hf:./t", "hf", prices=Prices(gpu_hour_usd=0.4)),
     "(pass --incumbent-model local so it is measured)"),
])
def test_the_unpriced_hint_names_the_exact_fix(who, info, fix):
    assert fix in _unpriced_reason([(who, Pricing.of(info.prices), info)])


def test_a_replay_prices_a_gpu_hour_recorder_from_its_stored_calibration(tmp_path):
    """Without --incumbent-model the recorder is not called, so not timed: its calibration stored on this hardware
    prices it; without one the hint to pass --incumbent-model stays."""
    from pytest_llmswap import llm_contract
    from pytest_llmswap.contract.decorator import CONTRACT_ATTR, resolve
    from pytest_llmswap.models.spec import parse_spec
    from pytest_llmswap.models.throughput_store import Calibration, ThroughputStore, calibration_key
    from pytest_llmswap.run.finish import results_model
    from pytest_llmswap.run.keys import RunOptions
    from pytest_llmswap.run.state import RunState
    from pytest_llmswap.types import Response

    teacher = Path(__file__).parents[1] / "examples" / "models" / "teacher"
    models = {"local": {"model": f"hf:{teacher}", "gpu_hour_usd": 0.4}}

    def replayed() -> ModelInfo:
        state = RunState(RunOptions(models=models, cache_dir=tmp_path / "cache"))
        def test_say(output):
            pass

        fn = llm_contract(prompt="Say {{ w }}", cases=[{"id": "a", "w": "hi"}])(test_say)
        resolved = resolve(getattr(fn, CONTRACT_ATTR), tmp_path / "test_say.py", "test_say", "test_say.py::test_say")
        state.add_contract(resolved)
        case = resolved.cases[0]
        state.store.put(resolved.module_path, resolved.key, "a", GoldenCase(
            prompt_hash=case.prompt_hash, variables=case.variables, messages=[list(m) for m in case.messages],
            model="hf:teacher", params={}, samples=[Response("hi").to_dict()], recorded_by="local"))
        try:
            return results_model(state).incumbent
        finally:
            state.close(owner=True)

    assert replayed().throughput_tok_s is None  # nothing stored yet: unmeasured, and the hint says so
    spec = parse_spec("local", models)
    key, hardware = calibration_key(spec)
    (tmp_path / "cache").mkdir()
    ThroughputStore(tmp_path / "cache").save({key: Calibration((900.0, 1000.0), hardware, "2026-12-01T00:00:00+00:00")})
    info = replayed()
    assert info.name == "local" and info.throughput_tok_s == 1000.0 and info.calibrated_at.startswith("2026-12-01")
    assert info.monthly_range(10.0) == (10.0, pytest.approx(10.0 * 1000 / 900))
