"""The README's main job: the example suite replayed on the example models' variants (end to end)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("transformers")


def run_examples(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "examples", "-p", "no:cacheprovider",
                           "--llmswap-cache-dir", str(tmp_path / "cache"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_example_goldens_replay_offline(tmp_path):
    done = run_examples("-q", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.slow(seconds=27)
def test_main_job_ranks_quantized_variants_below_the_distilled_student(tmp_path):
    out = tmp_path / "out.json"
    done = run_examples("--candidate-model", "teacher-bf16", "--candidate-model", "teacher-int8",
                        "--candidate-model", "student", "--llmswap-json", str(out),
                        "--llmswap-report", str(tmp_path / "report.html"), tmp_path=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]  # the student breaks the category contract
    results = json.loads(out.read_text())
    s = results["summaries"]["candidates"]

    def drift(name: str) -> float:
        return 1 - s[name]["metrics"]["edit"]["mean"]

    assert drift("teacher-bf16") <= drift("teacher-int8") < drift("student")
    assert s["student"]["exceeded"] > s["teacher-int8"]["exceeded"]
    assert s["student"]["metrics"]["kl"]["mean"] > s["teacher-int8"]["metrics"]["kl"]["mean"]
    assert s["teacher-int8"]["metrics"]["top1"]["mean"] > s["student"]["metrics"]["top1"]["mean"]
    verdicts = results["summaries"]["verdicts"]
    assert verdicts["student"]["verdict"] == "migrate with rework"
    # Measured rework: the student asked the teacher's prompt too; its own prompt (pyproject.toml) wins cases back.
    adaptation = s["student"]["adaptation"]
    assert adaptation["contracts"] == ["examples/test_triage.py::test_triage"]
    assert adaptation["before"]["regressions"] > s["student"]["regressions"] > 0
    assert any(r.startswith("measured rework: on the incumbent's prompt not recommended, broken-case rate")
               and "the adapted prompt wins back" in r for r in verdicts["student"]["reasons"])
    assert s["teacher-int8"]["adaptation"] is None
    html = (tmp_path / "report.html").read_text()
    assert "teacher-int8" in html and "student" in html and "<svg" in html


@pytest.mark.slow
def test_generation_cut_at_the_token_limit_is_reported_as_truncated(pytester):
    teacher = ROOT / "examples" / "models" / "teacher"
    pytester.makefile(".toml", pyproject=f'''
[tool.llmswap]
semantic = false

[tool.llmswap.models.short]
model = "hf:{teacher}?max_new_tokens=3"
''')
    pytester.makepyfile(test_t='''
from pytest_llmswap import llm_contract

@llm_contract(prompt="Triage this support ticket. Answer with JSON: category, priority and reference.\\nTicket: {{ t }}",
              cases=[{"id": "x", "t": "I was charged twice, invoice INV-19494."}])
def test_t(output):
    assert output.text
''')
    pytester.runpytest_subprocess("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("--candidate-model", "short", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=1)
    [case] = json.loads((pytester.path / "out.json").read_text())["cases"]
    assert case["output"]["finish_reason"] == "length" and case["output"]["usage"]["output_tokens"] == 3
    assert "token limit" in case["notes"]["truncated"]
