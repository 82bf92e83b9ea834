"""Issue 18: no pass without answers, and one line (never an INTERNALERROR) for what a bad day brings.

Inner pytest sessions against the fault-injecting server (``openai_server.py``) or ``echo``: each test states
the outcome, the one line the user reads and what is (not) on disk afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from openai_server import chat_server, named_models
from pytest_llmswap import cli
from pytest_llmswap.models.litellm_backend import retry_after_s
from test_errors import error_line
from test_faults import FAST, answer, goldens, one_failure_line, write_suite


def statistical_suite(pytester: pytest.Pytester, url: str) -> None:
    """Four cases; the contract bounds regressions only (the documented ``min_pass_rate=0`` form)."""
    models = named_models({"prod": url, "cand": url})
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n" + models)
    pytester.makepyfile(test_qa="""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{ q }}", cases=[{"id": q, "q": q} for q in ("a", "b", "c", "d")],
              min_pass_rate=0, max_regression_rate=0.5)
def test_qa(output, case):
    assert output.text.startswith("answer to")
""")


@pytest.mark.parametrize("failing", ["every", "one"])
def test_a_statistical_contract_whose_calls_failed_never_passes(pytester, litellm_loaded, failing):
    """Record and candidate: min_pass_rate=0 cannot fail, so failed calls must fail the row themselves."""
    fails = (lambda prompt: "500") if failing == "every" else (lambda prompt: "500" if "b" in prompt[-1] else None)
    with chat_server(answer, fault_for=fails) as server:
        statistical_suite(pytester, server.url)
        record = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST)
        record.assert_outcomes(failed=1)
        assert record.ret == 1
        count = "4 of 4" if failing == "every" else "1 of 4"
        line = one_failure_line(record, "could not record")
        assert f"could not record {count} cases (first: prod: InternalServerError after 2 attempt(s)" in line
        assert set(goldens(pytester)) == (set() if failing == "every" else {"a", "c", "d"})
    if failing == "one":  # the candidate row: the golden of b is missing, so record it on a healthy server
        with chat_server(answer) as healthy:
            statistical_suite(pytester, healthy.url)
            pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST).assert_outcomes(passed=1)
        with chat_server(answer, fault_for=fails) as server:
            statistical_suite(pytester, server.url)
            run = pytester.runpytest("--candidate-model", "cand", *FAST)
            run.assert_outcomes(failed=1)
            assert run.ret == 1
            assert "got no answer for 1 of 4 cases (first: cand: InternalServerError" in one_failure_line(
                run, "got no answer for")


class _Limited(Exception):
    """A provider error carrying response headers, as litellm's exceptions do."""

    def __init__(self, retry_after: str) -> None:
        super().__init__("rate limited")
        self.response = SimpleNamespace(headers={"Retry-After": retry_after})


@pytest.mark.parametrize(("value", "low", "high"), [
    ("7", 7, 7), ("-3", 0, 0), ("0.5", 0.5, 0.5),
    ("Fri, 31 Dec 2100 23:59:59 -0000", 2e9, 3e9),  # far future, with a zone: seconds, capped by the caller
    ("Fri, 31 Dec 2100 23:59:59 GMT", 2e9, 3e9),
    ("Fri, 31 Dec 2100 23:59:59", 2e9, 3e9),  # no zone: read as GMT, as HTTP dates are
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0, 0),  # past
])
def test_every_retry_after_form_is_seconds_from_now(value, low, high):
    assert low <= retry_after_s(_Limited(value)) <= high


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "", "Fri, 99 Foo 2100 99:99:99", "Mon, 31 Dec 99999999 1:1:1"])
def test_a_retry_after_that_is_no_time_is_ignored(value):
    assert retry_after_s(_Limited(value)) is None  # the backoff applies


def test_a_far_future_retry_after_waits_the_timeout_and_the_call_is_answered(pytester, litellm_loaded):
    """Before: "can't subtract offset-naive and offset-aware datetimes" failed every unanswered request."""
    far = ["429:retry-after=Fri, 31 Dec 2100 23:59:59 -0000", "429:retry-after=Fri, 31 Dec 2100 23:59:59"]
    with chat_server(answer, faults=far) as prod:
        write_suite(pytester, prod.url, prod.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", "--llmswap-timeout", "1",
                           "--llmswap-retries", "2").assert_outcomes(passed=2)


def test_a_request_waiting_to_retry_leaves_its_concurrency_slot_to_the_others(pytester, litellm_loaded):
    with chat_server(answer, faults=["429:retry-after=1"]) as prod:
        write_suite(pytester, prod.url, prod.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", "--llmswap-concurrency", "1",
                           *FAST).assert_outcomes(passed=2)
        # alpha is limited first; beta is answered while alpha waits, then alpha's retry.
        assert prod.prompts() == ["Question: alpha", "Question: beta", "Question: alpha"]


def test_max_wait_bounds_a_models_retry_waits_and_says_so(pytester, litellm_loaded):
    with chat_server(answer, fault_for=lambda prompt: "429:retry-after=3" if "beta" in prompt else None) as prod:
        write_suite(pytester, prod.url, prod.url)
        started = time.monotonic()
        result = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", "--llmswap-timeout", "5",
                                    "--llmswap-retries", "5", "--llmswap-max-wait", "4")
        result.assert_outcomes(passed=1, failed=1)
        line = one_failure_line(result, "recording failed: prod:")
        # One wait of 3 s fits in 4 s, a second does not: two calls, then the one line says why it stopped.
        assert "RateLimitError after 2 attempt(s) (no retry: this model's retry waits would pass " \
               "--llmswap-max-wait 4s)" in line
        assert prod.prompts().count("Question: beta") == 2 and time.monotonic() - started < 20


@pytest.mark.parametrize(("args", "expected"), [
    (["--llmswap-timeout", "nan"], "ERROR: --llmswap-timeout / llmswap_timeout: nan is not a finite number"),
    (["--llmswap-timeout", "inf"], "ERROR: --llmswap-timeout / llmswap_timeout: inf is not a finite number"),
    (["--llmswap-timeout", "0"], "ERROR: --llmswap-timeout / llmswap_timeout: must be at least 0.001, got 0.0"),
    (["--llmswap-max-wait", "nan"], "ERROR: --llmswap-max-wait / llmswap_max_wait: nan is not a finite number"),
    (["--llmswap-max-wait", "-1"], "ERROR: --llmswap-max-wait / llmswap_max_wait: must be at least 0, got -1.0"),
    (["--llmswap-backoff", "nan"], "ERROR: --llmswap-backoff / llmswap_backoff: nan is not a finite number"),
    (["--llmswap-backoff", "-1"], "ERROR: --llmswap-backoff / llmswap_backoff: must be at least 0, got -1.0"),
])
def test_a_number_option_that_is_no_finite_number_is_refused_at_start(suite, args, expected):
    result = suite().runpytest("--candidate-model", "echo", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error_line(result) == expected


@pytest.mark.parametrize("price", ['"cheap"', "nan", "inf", "-2.5", "true"])
def test_a_price_that_is_no_amount_is_refused_at_start(suite, price):
    pytester = suite()
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false
[tool.llmswap.models.local]
model = "echo"
gpu_hour_usd = {price}
""")
    result = pytester.runpytest("--candidate-model", "local")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error_line(result).startswith(f"ERROR: [tool.llmswap.models.local]: gpu_hour_usd = ")
    assert error_line(result).endswith(": must be a number of USD, 0 or more")
    assert not (pytester.path / ".llmswap_cache").exists()  # refused before any call


def _record_with_echo(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", *args)


def _no_internal_error(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text, text


def _store_line(result: pytest.RunResult, store: Path) -> str:
    lines = [ln for ln in result.stdout.lines if ln.startswith(f"ERROR cannot write {store / 'responses.sqlite3'}: ")]
    assert len(lines) == 1, result.stdout.str()
    assert lines[0].endswith("or point --llmswap-cache-dir elsewhere, or pass --llmswap-no-cache (answers after it "
                             "were not kept for a rerun)")
    return lines[0]


@pytest.mark.parametrize("damage", ["folder is a file", "database is garbage", "lock is a folder", "read-only"])
def test_a_store_that_cannot_be_used_is_one_line_and_the_run_goes_on(suite, damage):
    pytester = suite()
    store = pytester.path / "store"
    if damage == "folder is a file":
        store.write_text("not a folder")
    elif damage == "database is garbage":
        store.mkdir()
        (store / "responses.sqlite3").write_bytes(b"this is not a database" * 100)
    elif damage == "lock is a folder":  # what a lock file the user cannot open does; root ignores permissions
        (store / ".execute.lock").mkdir(parents=True)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; 'lock is a folder' stands for it")
        store.mkdir(mode=0o555)
    result = _record_with_echo(pytester, "--llmswap-cache-dir", "store")
    _no_internal_error(result)
    result.assert_outcomes(passed=2)  # every item ran and was judged, without the store
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the run says the answers were not kept
    _store_line(result, store)
    assert (pytester.path / "__llm_goldens__" / "test_suite.json").exists()


def test_a_store_row_that_is_no_answer_is_a_miss_with_a_warning(suite):
    pytester = suite()
    _record_with_echo(pytester).assert_outcomes(passed=2)
    db = pytester.path / ".llmswap_cache" / "responses.sqlite3"
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM responses ORDER BY key")]
        conn.execute("UPDATE responses SET response = 'not json {' WHERE key = ?", (keys[0],))
        conn.execute("UPDATE responses SET response = '{\"model\": \"echo\"}' WHERE key = ?", (keys[1],))
    conn.close()
    result = pytester.runpytest("--candidate-model", "echo")  # the same requests: read from the store
    _no_internal_error(result)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"WARNING 2 stored answer(s) in {db} could not be read (not JSON, or no text): the "
                                 "models were asked again and the answers replaced"])
    again = pytester.runpytest("--candidate-model", "echo")  # the rows were replaced: no warning now
    again.assert_outcomes(passed=2)
    assert "could not be read" not in again.stdout.str()


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("usage", {"input_tokens": "many"}, "sample 1: 'usage' must hold token counts (whole numbers), not \"{'input_tokens': 'many'}\""),
    ("usage", "lots", "sample 1: 'usage' must hold token counts (whole numbers), not 'lots'"),
    ("latency_s", "fast", "sample 1: 'latency_s' must be a number (0 or more) or null, not 'fast'"),
    ("latency_s", [1], "sample 1: 'latency_s' must be a number (0 or more) or null, not '[1]'"),
    ("cost_usd", -1, "sample 1: 'cost_usd' must be a number (0 or more) or null, not '-1'"),
])
def test_a_golden_sample_field_of_the_wrong_type_is_one_golden_format_line(suite, field, value, expected):
    pytester = suite()
    _record_with_echo(pytester).assert_outcomes(passed=2)
    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    data = json.loads(path.read_text())
    data["contracts"]["test_contract"]["cases"]["b"]["samples"][0][field] = value
    path.write_text(json.dumps(data))
    for args in ((), ("--candidate-model", "echo")):  # replay and candidate
        result = pytester.runpytest(*args)
        _no_internal_error(result)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert error_line(result) == (f"ERROR: golden file {path} is malformed at test_contract[b] ({expected}); "
                                      "restore it from version control or re-record it")


def test_a_lone_surrogate_in_an_answer_breaks_no_report_writer(suite, monkeypatch, tmp_path):
    """echo answers with the case's word, a lone surrogate: every file the run and the CLI write holds it escaped."""
    # The check fails, so the Markdown shows the case with its answer in the message.
    pytester = suite(decorator='prompt="Say {{ word }}", cases=[{"id": "a", "word": "x\\udc80y"}]',
                     body='assert output.text == "", output.text')
    _record_with_echo(pytester).assert_outcomes(failed=1)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest("--candidate-model", "echo", "--llmswap-markdown", "pr.md", "--llmswap-json",
                                "out.json", "--llmswap-report", "out.html")
    _no_internal_error(result)
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The terminal summary (with the verdict) is there, down to the list of files written.
    assert "could not summarise" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*No candidate can replace*", "echo: *", "*Markdown*pr.md"])
    for path in (pytester.path / "pr.md", summary, pytester.path / "out.html"):
        assert "x\\udc80y" in path.read_text(encoding="utf-8"), path
    assert json.loads((pytester.path / "out.json").read_text())["cases"][0]["output"]["text"] == "Say x\udc80y"
    # The CLI writes through the same writer.
    out = pytester.path
    assert cli.main(["report", str(out / "out.json"), "-o", str(out / "again.html"), "--markdown",
                     str(out / "again.md")]) == 0
    assert cli.main(["merge", str(out / "out.json"), "-o", str(out / "merged.json")]) == 0
    assert cli.main(["export", "--goldens", str(out), "-o", str(out / "train.jsonl")]) == 0
    assert "x\\udc80y" in (out / "again.md").read_text(encoding="utf-8")
    assert json.loads((out / "merged.json").read_text())["cases"][0]["output"]["text"] == "Say x\udc80y"
    assert json.loads((out / "train.jsonl").read_text().splitlines()[0])["messages"][-1]["content"] == "Say x\udc80y"
