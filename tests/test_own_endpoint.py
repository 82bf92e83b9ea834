"""A team's first day on its own OpenAI-compatible endpoint: mixed backends, the incumbent's prices, paths."""

import json

import pytest

from openai_server import chat_server, named_models
from test_litellm_http import CASES, sloppy_triage, triage


def write_suite(pytester: pytest.Pytester, prod_url: str, twin_url: str, sloppy_url: str,
                prod_extra: str = "") -> None:
    models = named_models({"prod": prod_url, "twin": twin_url, "sloppy": sloppy_url}, extra={"prod": prod_extra})
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n\n" + models)
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


@pytest.fixture
def workspace(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """A workspace with its own pytest settings and a named model, one level below pytester's folder, with
    an out.json above it from an earlier run (pytest would take that file for a test path)."""
    ws = pytester.mkdir("ws")
    (ws / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-v"\n\n'
                                       '[tool.llmswap]\nsemantic = false\n\n'
                                       '[tool.llmswap.models.cand]\nmodel = "echo"\n')
    (ws / "tests").mkdir()
    (ws / "tests" / "test_suite.py").write_text(
        "from pytest_llmswap import llm_contract\n\n"
        "@llm_contract(prompt='Say {{ word }}', cases=[{'id': 'a', 'word': 'hi'}])\n"
        "def test_contract(output, case):\n    assert case['word'] in output.text\n")
    (pytester.path / "out.json").write_text("{}")
    monkeypatch.chdir(ws)
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=1)
    return ws


@pytest.mark.parametrize("form", ["space", "equals"])
def test_a_path_option_never_moves_the_rootdir(pytester, workspace, form):
    args = ["--llmswap-json", "../out.json"] if form == "space" else ["--llmswap-json=../out.json"]
    result = pytester.runpytest("--candidate-model", "cand", *args, "--llmswap-markdown", "../out.md")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"rootdir: {workspace}*"])
    result.stdout.fnmatch_lines(["*test_contract*PASSED*"])  # the workspace's addopts
    assert json.loads((pytester.path / "out.json").read_text())["candidates"][0]["name"] == "cand"
    assert (pytester.path / "out.md").is_file()


def test_path_options_resolve_against_the_folder_pytest_started_in(pytester, workspace, monkeypatch):
    monkeypatch.chdir(workspace / "tests")
    result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json=out.json", "--llmswap-report",
                                "r.html", "--junitxml=j.xml", "--llmswap-cache-dir", "store")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"rootdir: {workspace}*"])
    for name in ("out.json", "r.html", "j.xml", "store"):
        assert (workspace / "tests" / name).exists(), name
        assert not (workspace / name).exists(), name
