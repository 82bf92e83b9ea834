"""The fault matrix (docs/reliability.md): each fault x each phase, against a fault-injecting server on 127.0.0.1.

Each test states what the user sees (outcomes, the one failure line) and what is on disk afterwards
(goldens, the response store). A "transient" fault hits one request once; a "permanent" one hits every
request for the case ``beta``, whatever the retries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_server import chat_server
from pytest_llmswap.models.cache import ResponseCache

SECRET = "sk-fault-secret-0123456789"
HEADER_SECRET = "hdr-team-key-5f1e9c2a7b"  # sent in extra_headers, without "Bearer"
FAULTS = ["429", "429:retry-after=1", "500", "503", "timeout", "reset", "malformed_json", "no_choices", "html",
          "empty_body", "empty_content", "null_content"]
# Every run gets a short timeout (the "timeout" fault) and one retry (permanent faults fail fast).
# One retry after a short backoff: these tests are about what a fault does, not how long the backoff waits.
FAST = ("--llmswap-timeout", "1", "--llmswap-retries", "1", "--llmswap-backoff", "0.01")


def answer(prompt: str) -> str:
    return f"answer to {prompt}"


def on_beta(fault: str):
    return lambda prompt: fault if "beta" in prompt else None


def write_suite(pytester: pytest.Pytester, prod_url: str, cand_url: str, cases: list[str] | None = None) -> None:
    models = "".join(f"""
[tool.llmswap.models.{name}]
model = "openai/{name}-model"
api_base = "{url}"
api_key = "{SECRET}"
extra_headers = {{ X-Team-Key = "{HEADER_SECRET}" }}
""" for name, url in (("prod", prod_url), ("cand", cand_url)))
    pytester.makefile(".toml", pyproject=f"[tool.llmswap]\nsemantic = false\n{models}")
    ids = cases or ["alpha", "beta"]
    pytester.makepyfile(test_qa=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{{{ q }}}}", cases=[{{"id": q, "q": q}} for q in {ids!r}])
def test_qa(output, case):
    assert output.text == "answer to Question: " + case["q"]
""")


def goldens(pytester: pytest.Pytester) -> dict[str, str]:
    """Case id -> golden text, from the golden file on disk."""
    path = pytester.path / "__llm_goldens__" / "test_qa.json"
    if not path.exists():
        return {}
    cases = json.loads(path.read_text(encoding="utf-8"))["contracts"]["test_qa"]["cases"]
    return {cid: case["samples"][0]["text"] for cid, case in cases.items()}


def stored(pytester: pytest.Pytester) -> int:
    """How many answers the response store holds."""
    store = ResponseCache(pytester.path / ".llmswap_cache", "probe")
    try:
        return store.count()
    finally:
        store.close()


def assert_no_secret(root: Path, *texts: str) -> None:
    """No credential in any file under ``root`` (but the user's own pyproject.toml) nor in the given outputs."""
    for path in [p for p in root.rglob("*") if p.is_file() and p.name != "pyproject.toml"]:
        data = path.read_bytes()
        assert SECRET.encode() not in data and HEADER_SECRET.encode() not in data, path
    for text in texts:
        assert SECRET not in text and HEADER_SECRET not in text


def one_failure_line(result: pytest.RunResult, prefix: str) -> str:
    """The single line that reports the failed case; no traceback reaches the user."""
    out = result.stdout.str()
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if prefix in ln]
    assert lines, out
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_transient_fault_in_record_and_candidate_is_retried(pytester, litellm_loaded, fault):
    """Record and candidate: one fault, then good answers -> every item passes, every answer is stored."""
    with chat_server(answer, faults=[fault]) as prod, chat_server(answer, faults=[fault]) as cand:
        write_suite(pytester, prod.url, cand.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST).assert_outcomes(passed=2)
        assert len(prod.seen) == 3 and goldens(pytester) == {c: f"answer to Question: {c}" for c in ("alpha", "beta")}
        result = pytester.runpytest("--candidate-model", "cand", *FAST)
        result.assert_outcomes(passed=2)
        assert len(cand.seen) == 3 and stored(pytester) == 4
        # Replay: no call, the goldens as recorded.
        pytester.runpytest().assert_outcomes(passed=2)
        assert len(prod.seen) == 3 and len(cand.seen) == 3


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_permanent_fault_in_record_fails_the_case_and_writes_no_golden(pytester, litellm_loaded, fault):
    """Record: the faulty case fails with one line; the other case's golden is written; replay says how to record."""
    with chat_server(answer, fault_for=on_beta(fault)) as prod, chat_server(answer) as cand:
        write_suite(pytester, prod.url, cand.url)
        result = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST)
        result.assert_outcomes(passed=1, failed=1)
        line = one_failure_line(result, "recording failed: prod:")
        assert "after 2 attempt(s)" in line
        assert goldens(pytester) == {"alpha": "answer to Question: alpha"} and stored(pytester) == 1
        calls = len(prod.seen)
        replay = pytester.runpytest()
        replay.assert_outcomes(passed=1, failed=1)
        replay.stdout.fnmatch_lines(["*no golden for case 'beta'*record it with*"])
        assert len(prod.seen) == calls
        assert_no_secret(pytester.path, result.stdout.str(), replay.stdout.str())


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_permanent_fault_in_candidate_fails_the_case_and_a_rerun_calls_only_it(pytester, litellm_loaded, fault):
    """Candidate: the faulty case fails with one line, the other passes and is stored; a rerun calls only beta."""
    with chat_server(answer) as prod, chat_server(answer, fault_for=on_beta(fault)) as cand:
        write_suite(pytester, prod.url, cand.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=2)
        result = pytester.runpytest("--candidate-model", "cand", *FAST)
        result.assert_outcomes(passed=1, failed=1)
        assert "after 2 attempt(s)" in one_failure_line(result, "model call failed: cand:")
        assert stored(pytester) == 3  # two goldens' answers and the candidate's good one
        before = len(cand.seen)
        pytester.runpytest("--candidate-model", "cand", *FAST).assert_outcomes(passed=1, failed=1)
        assert {p for p in cand.prompts()[before:]} == {"Question: beta"}
        assert goldens(pytester) == {c: f"answer to Question: {c}" for c in ("alpha", "beta")}


@pytest.mark.parametrize("fault", ["empty_content", "null_content"])
def test_empty_answers_never_overwrite_good_goldens(pytester, litellm_loaded, fault):
    with chat_server(answer) as good:
        write_suite(pytester, good.url, good.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=2)
    before = (pytester.path / "__llm_goldens__" / "test_qa.json").read_bytes()
    with chat_server(answer, fault_for=lambda p: fault) as empty:
        write_suite(pytester, empty.url, empty.url)
        result = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "all", *FAST)
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(["*empty answer*allow_empty=True*"])
    assert (pytester.path / "__llm_goldens__" / "test_qa.json").read_bytes() == before
    pytester.runpytest().assert_outcomes(passed=2)


def test_a_key_echoed_by_the_provider_reaches_no_output(pytester, litellm_loaded, tmp_path, monkeypatch):
    """A provider error that echoes every request header (the extra_headers key, without "Bearer")."""
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with chat_server(answer) as prod, chat_server(answer, fault_for=on_beta("echo_headers")) as cand:
        write_suite(pytester, prod.url, cand.url)
        rec = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new")
        result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json", "out.json", "--llmswap-report",
                                    "report.html", "--llmswap-markdown", "summary.md", "--junitxml", "junit.xml")
        result.assert_outcomes(passed=1, failed=1)
        sent = {k.lower(): v for k, v in cand.seen[-1]["headers"].items()}
        assert sent["x-team-key"] == HEADER_SECRET  # the key was sent, and echoed back in the error...
    line = one_failure_line(result, "model call failed: cand:")
    assert "BadRequestError" in line and "x-team-key" in line.lower()
    for name in ("out.json", "report.html", "summary.md", "junit.xml"):
        assert (pytester.path / name).exists(), name
    assert_no_secret(pytester.path, rec.stdout.str(), result.stdout.str(), result.stderr.str())  # ...and masked
    assert_no_secret(tmp_path)
