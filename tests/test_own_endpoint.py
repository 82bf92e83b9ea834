"""A team's first day on its own OpenAI-compatible endpoint: mixed backends, the incumbent's prices, paths."""

import json

import pytest

from openai_server import chat_server
from test_litellm_http import CASES, sloppy_triage, triage


def write_suite(pytester: pytest.Pytester, prod_url: str, twin_url: str, sloppy_url: str,
                prod_extra: str = "") -> None:
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false

[tool.llmswap.models.prod]
model = "openai/prod-model"
api_base = "{prod_url}"
api_key = "sk-prod"
{prod_extra}

[tool.llmswap.models.twin]
model = "openai/twin-model"
api_base = "{twin_url}"
api_key = "sk-twin"

[tool.llmswap.models.sloppy]
model = "openai/sloppy-model"
api_base = "{sloppy_url}"
api_key = "sk-sloppy"
""")
    pytester.makepyfile(test_triage=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Triage: {{{{ ticket }}}}", cases={CASES!r}, output="json", calls_per_month=1000,
              tolerance={{"fields": ["category"], "kl": 0.05, "top1": 0.9}})
def test_triage(output, case):
    assert output.json["priority"] in {{"low", "high"}}
""")


def test_kl_and_top1_tolerances_do_not_apply_to_api_models(pytester, litellm_loaded):
    with chat_server(triage) as prod, chat_server(triage) as twin, chat_server(sloppy_triage) as sloppy:
        write_suite(pytester, prod.url, twin.url, sloppy.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=6)
        result = pytester.runpytest("--candidate-model", "twin", "--candidate-model", "sloppy",
                                    "--llmswap-json", "out.json", "--llmswap-report", "report.html")
    # The twin is identical on every case: within tolerance; the sloppy cousin fails on the category alone.
    result.assert_outcomes(passed=6 + 4, failed=2)
    assert "not available" not in result.stdout.str()
    cases = json.loads((pytester.path / "out.json").read_text())["cases"]
    for case in cases:
        assert case["metrics"]["kl"] is None and case["metrics"]["top1"] is None
        assert case["notes"]["kl"].startswith("n/a: ")
        assert "kl" not in case["exceeded_metrics"] and "top1" not in case["exceeded_metrics"]
    assert {c["candidate"] for c in cases if c["exceeded"]} == {"sloppy"}
    assert all(c["exceeded_metrics"] == ["fields"] for c in cases if c["exceeded"])
    assert "<td>n/a</td>" in (pytester.path / "report.html").read_text()
