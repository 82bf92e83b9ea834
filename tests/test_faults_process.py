"""Faults around the process: kill -9 mid-run, two processes recording at once, xdist, failed writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from openai_server import chat_server
from pytest_llmswap.models.cache import ResponseCache
from test_faults import answer, goldens, stored, write_suite

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DEEPEVAL_TELEMETRY_OPT_OUT": "1"}


def start_pytest(pytester: pytest.Pytester, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                            cwd=pytester.path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow(seconds=8)
def test_kill_9_mid_record_then_rerun_calls_only_what_was_never_answered(pytester):
    cases = [f"q{i:03d}" for i in range(100)]
    # The server answers 30 requests, then holds every other one: the run is killed at a known point.
    with chat_server(answer, hold_after=30) as prod:
        write_suite(pytester, prod.url, prod.url, cases)
        proc = start_pytest(pytester, "--incumbent-model", "prod", "--llmswap-record", "new")
        wait_for(lambda: stored(pytester) >= 30, "30 stored answers")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered = set(prod.answered)
        assert len(answered) == 30 and stored(pytester) == 30 and not goldens(pytester)
        prod.hold_after = None
        prod.release.set()
        before = len(prod.seen)
        rerun = start_pytest(pytester, "--incumbent-model", "prod", "--llmswap-record", "new")
        out, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, out
        resumed = prod.prompts()[before:]
    assert len(resumed) == len(set(resumed)) == 70  # each never-answered request once, nothing more
    assert set(resumed) == {f"Question: {c}" for c in cases} - answered
    assert len(goldens(pytester)) == 100


@pytest.mark.slow
def test_two_processes_recording_at_once_call_each_request_once_and_lose_nothing(pytester):
    cases = [f"q{i:02d}" for i in range(20)]
    with chat_server(answer, delay_s=0.05) as prod:
        write_suite(pytester, prod.url, prod.url, cases)
        procs = [start_pytest(pytester, "--incumbent-model", "prod", "--llmswap-record", "new") for _ in range(2)]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert len(prod.seen) == 20
    assert goldens(pytester) == {c: f"answer to Question: {c}" for c in cases}


@pytest.mark.slow(seconds=12)
@pytest.mark.parametrize("no_cache", [False, True])
def test_xdist_never_multiplies_calls(pytester, no_cache):
    pytest.importorskip("xdist")
    cases = [f"q{i:02d}" for i in range(24)]
    # Two workers plan the same 48 requests; each model must still be asked each question once.
    with chat_server(answer) as prod, chat_server(answer) as cand:
        write_suite(pytester, prod.url, cand.url, cases)
        flags = ["--llmswap-no-cache"] if no_cache else []
        result = pytester.runpytest_subprocess("-n", "2", "--incumbent-model", "prod", "--llmswap-record", "all",
                                               "--candidate-model", "cand", *flags)
        result.assert_outcomes(passed=48)
        assert len(prod.seen) == 24 and len(cand.seen) == 24
    if no_cache:
        assert not (pytester.path / ".llmswap_cache").exists()


def test_unwritable_report_path_is_one_line_and_other_outputs_are_written(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    (pytester.path / "taken").write_text("a file where a folder is needed")
    result = pytester.runpytest("--candidate-model", "echo", "--llmswap-report", "taken/report.html",
                                "--llmswap-json", "out.json", "--llmswap-markdown", "summary.md")
    result.assert_outcomes(passed=2)
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*cannot write */taken/report.html: *taken is a file, not a folder*"])
    assert json.loads((pytester.path / "out.json").read_text())["cases"]
    assert (pytester.path / "summary.md").exists()


DISK_FULL_CONFTEST = """
import resource, signal
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # From now on no file may grow past 8 KiB: the big golden file cannot be written ("disk full").
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
"""


def test_disk_full_on_one_golden_file_is_one_line_and_the_other_is_written(suite):
    pytester = suite(name="test_small")
    suite(decorator='prompt="{{ word }}", cases=[{"id": "big", "word": "word " * 4000}]',
          body="assert output.text", name="test_big")
    pytester.makeconftest(DISK_FULL_CONFTEST)
    result = pytester.runpytest_subprocess("--incumbent-model", "echo", "--llmswap-record", "new")
    result.assert_outcomes(passed=3)
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*cannot write *__llm_goldens__*test_big.json: file too large*"])
    assert (pytester.path / "__llm_goldens__" / "test_small.json").exists()
    assert not (pytester.path / "__llm_goldens__" / "test_big.json").exists()


def test_store_shared_by_processes_keeps_every_answer(tmp_path):
    """Eight processes write 50 answers each into one store at once: all 400 are there."""
    script = ("import sys; from pathlib import Path; from pytest_llmswap.models.cache import ResponseCache;"
              "from pytest_llmswap.types import Response;"
              "s = ResponseCache(Path(sys.argv[1]), 'r'); w = sys.argv[2];"
              "[s.put(f'{w}-{i}', Response(text=f'{w} {i}')) for i in range(50)]")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(w)], env=ENV) for w in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    store = ResponseCache(tmp_path, "other")
    assert store.count() == 400
    assert store.get("7-49").text == "7 49"
