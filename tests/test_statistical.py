"""Statistical contracts (``min_pass_rate`` / ``max_regression_rate``) and the progress output, end to end.

Goldens are recorded on the built-in ``echo`` model, which answers with the prompt itself: with the prompt
``"Say {{ w }}"`` and the check ``"bad" not in output.text``, a case whose word starts with ``bad`` fails and
every other case passes, so each test chooses its pass rate. Candidates are ``echo`` under other names
(answers equal to the goldens) or a :class:`openai_server.ChatServer` that leaves chosen words out (a
regression: the golden passes, the candidate fails). Every expected bound is the one-sided 95% Wilson bound
(``wilson(..., confidence=0.9)``, alpha = 0.05), worked out in the test's comment and cross-checked by
:func:`bound` against ``pytest_llmswap.verdict.stats`` (which tests/test_stats.py checks against scipy).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterable

import pytest

from openai_server import chat_server
from pytest_llmswap.verdict import stats
from pytest_llmswap.run.progress import Progress

# The contract's check: echo's answer fails exactly on the words starting with "bad"; a candidate that leaves
# the word out fails the second assertion (echo never does).
CHECK = 'assert "bad" not in output.text, "said bad"\n    assert case["w"] in output.text, "left the word out"'
RECORD = ("--incumbent-model", "echo", "--llmswap-record", "new")
KEY = "sk-test-statistical-00000000"


def cases(n: int, bad: Iterable[int] = ()) -> list[dict[str, str]]:
    """``n`` cases ``c000``..; those in ``bad`` get the word ``badN`` (every prompt stays distinct)."""
    bad = set(bad)
    return [{"id": f"c{i:03d}", "w": f"bad{i}" if i in bad else f"w{i}"} for i in range(n)]


def contract(name: str, rows: list[dict[str, str]], args: str = "", prompt: str = "Say") -> str:
    return f"""
@llm_contract(prompt="{prompt} {{{{ w }}}}", cases={rows!r}{", " + args if args else ""})
def {name}(output, case):
    {CHECK}
"""


def write(pytester: pytest.Pytester, *contracts: str, settings: str = "", models: str = "") -> None:
    pytester.makefile(".toml", pyproject=f"[tool.llmswap]\nsemantic = false\n{settings}\n{models}")
    pytester.makepyfile(test_s="from pytest_llmswap import llm_contract\n" + "".join(contracts))


def candidates(*names: str) -> list[str]:
    return [a for n in names for a in ("--candidate-model", n)]


def bound(passed: int, n: int) -> str:
    """The lower one-sided 95% Wilson bound of ``passed / n`` as the failure message prints it."""
    return f"{stats.wilson(passed, n, confidence=0.9).low:.1%}"


def item_ids(result: pytest.RunResult) -> list[str]:
    """The ids of the items run (sorted), from ``-rA`` summary lines ``OUTCOME test_s.py::NAME[ID]``."""
    return sorted(re.findall(r"^(?:PASSED|FAILED) test_s\.py::(\S+)", result.stdout.str(), re.M))


def failure(result: pytest.RunResult, item: str) -> str:
    """The one-line failure message of a statistical item (printed under its header)."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.match(rf"_+ {re.escape(item)} _+$", line))
    return lines[start + 1]


def results(pytester: pytest.Pytester, name: str = "out.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def clean(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text


# -- the threshold: met, missed, straddled ----------------------------------------------------------------------

def test_threshold_met_is_one_passing_item_per_model_row_and_every_case_is_in_the_results(pytester):
    # 98 of 100 pass: the lower bound 94.1% reaches 90%.
    assert bound(98, 100) == "94.1%"
    write(pytester, contract("test_say", cases(100, bad=[7, 42]), "min_pass_rate=0.9"))
    recorded = pytester.runpytest(*RECORD, "-rA", "--llmswap-json", "rec.json")
    recorded.assert_outcomes(passed=1)
    assert item_ids(recorded) == ["test_say[all-cases]"]
    rec = results(pytester, "rec.json")["cases"]
    assert sorted(c["case_id"] for c in rec) == [f"c{i:03d}" for i in range(100)]
    assert {c["candidate"] for c in rec} == {None}
    assert sorted(c["case_id"] for c in rec if not c["passed"]) == ["c007", "c042"]

    replayed = pytester.runpytest("-rA")  # neither record nor candidate: the goldens replayed, one item
    replayed.assert_outcomes(passed=1)
    assert item_ids(replayed) == ["test_say[all-cases]"]

    run = pytester.runpytest(*candidates("e=echo", "f=echo"), "-rA", "--llmswap-json", "out.json")
    clean(run)
    run.assert_outcomes(passed=2)
    assert item_ids(run) == ["test_say[e]", "test_say[f]"]
    out = results(pytester)
    for name in ("e", "f"):
        rows = [c for c in out["cases"] if c["candidate"] == name]
        assert sorted(c["case_id"] for c in rows) == [f"c{i:03d}" for i in range(100)]
        assert sorted(c["case_id"] for c in rows if not c["passed"]) == ["c007", "c042"]
        assert all(c["output"]["text"] == f"Say {c['variables']['w']}" for c in rows)
        summary = out["summaries"]["candidates"][name]
        assert (summary["cases"], summary["checks_passed"], summary["pass_rate"]) == (100, 98, 0.98)


def test_threshold_missed_fails_the_item_naming_five_failing_cases(pytester):
    # 80 of 100 pass: the lower bound 72.7% is below 90%; 20 failing cases, 5 named.
    assert bound(80, 100) == "72.7%"
    write(pytester, contract("test_say", cases(100, bad=range(60, 80)), "min_pass_rate=0.9"))
    pytester.runpytest(*RECORD)
    run = pytester.runpytest(*candidates("e=echo"), "--llmswap-json", "out.json")
    clean(run)
    run.assert_outcomes(failed=1)
    assert failure(run, "test_say[e]") == (
        "pass rate 80/100 = 80.0%: its lower 95% bound 72.7% is below min_pass_rate 90.0%. Failing cases: "
        "c060: said bad; c061: said bad; c062: said bad; c063: said bad; c064: said bad (and 15 more)")
    assert any(line.startswith("FAILED test_s.py::test_say[e] - Failed: pass rate 80/100 = 80.0%")
               for line in run.stdout.lines)
    rows = results(pytester)["cases"]
    assert len(rows) == 100  # the failing item still reports every case, passed or not
    assert sorted(c["case_id"] for c in rows if not c["passed"]) == [f"c{i:03d}" for i in range(60, 80)]
    assert {c["check_message"] for c in rows if not c["passed"]} == {"said bad"}


def test_a_rate_above_the_threshold_whose_interval_straddles_it_fails_on_the_bound(pytester):
    # 97 of 100 pass: 97% is above 95%, but the lower bound 92.7% is not, so 100 cases cannot show the
    # contract holds. 970 of 1,000 (the same 97%) bound it at 96.0%: that contract passes.
    assert (bound(97, 100), bound(970, 1000)) == ("92.7%", "96.0%")
    write(pytester, contract("test_small", cases(100, bad=[1, 2, 3]), "min_pass_rate=0.95"),
          contract("test_large", cases(1000, bad=range(0, 1000, 34)[:30]), "min_pass_rate=0.95", prompt="Tell"))
    pytester.runpytest(*RECORD)
    run = pytester.runpytest(*candidates("e=echo"), "-rA")
    clean(run)
    run.assert_outcomes(passed=1, failed=1)
    assert item_ids(run) == ["test_large[e]", "test_small[e]"]
    assert failure(run, "test_small[e]").startswith(
        "pass rate 97/100 = 97.0%: its lower 95% bound 92.7% is below min_pass_rate 95.0%. Failing cases: "
        "c001: said bad; c002: said bad; c003: said bad")


# -- one module, both kinds of contract -------------------------------------------------------------------------

def test_statistical_and_per_case_contracts_in_one_module(pytester):
    write(pytester, contract("test_stat", cases(40, bad=[5]), "min_pass_rate=0.8"),
          contract("test_each", cases(3, bad=[1]), prompt="Tell"))
    collected = pytester.runpytest(*candidates("e=echo", "f=echo"), "--collect-only", "-q")
    assert [line for line in collected.stdout.lines if "::" in line] == [
        "test_s.py::test_stat[e]", "test_s.py::test_stat[f]",
        "test_s.py::test_each[c000-e]", "test_s.py::test_each[c000-f]", "test_s.py::test_each[c001-e]",
        "test_s.py::test_each[c001-f]", "test_s.py::test_each[c002-e]", "test_s.py::test_each[c002-f]"]

    recorded = pytester.runpytest(*RECORD, "-rA")
    recorded.assert_outcomes(passed=3, failed=1)  # 39/40 clears 80% (bound 89.5%); c001 of test_each fails
    assert item_ids(recorded) == ["test_each[c000]", "test_each[c001]", "test_each[c002]", "test_stat[all-cases]"]

    run = pytester.runpytest(*candidates("e=echo", "f=echo"), "-rA", "--llmswap-json", "out.json")
    clean(run)
    run.assert_outcomes(passed=6, failed=2)
    assert item_ids(run) == sorted(["test_stat[e]", "test_stat[f]", "test_each[c000-e]", "test_each[c000-f]",
                                    "test_each[c001-e]", "test_each[c001-f]", "test_each[c002-e]", "test_each[c002-f]"])
    assert any(line.startswith("FAILED test_s.py::test_each[c001-e] - AssertionError: said bad")
               for line in run.stdout.lines)
    out = results(pytester)
    counts = {(c["contract"].split("::")[1], c["candidate"]) for c in out["cases"]}
    assert counts == {(t, m) for t in ("test_stat", "test_each") for m in ("e", "f")}
    assert len(out["cases"]) == 2 * (40 + 3)
    # The terminal counts cases, not items: 43 per candidate, one statistical item standing for 40 of them.
    run.stdout.fnmatch_lines(["  pass rate 95.3%: 41 of 43 cases passed*"])


# -- max_regression_rate ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_max_regression_rate_fails_a_worse_candidate_naming_its_regressions_first(pytester, litellm_loaded):
    # 60 cases; the incumbent fails c000-c004 (5 "bad" words) and passes the rest. "same" (echo) answers like
    # it: 55/60 pass (bound 83.9% >= 70%) and breaks no case (exact one-sided 95% upper bound 4.9% <= 5%).
    # "worse" also leaves out the words of c030-c035: 49/60 pass (bound 72.1% >= 70%, so the pass rate
    # alone would pass) but 6 broken cases are a rate of 10.0%, upper bound 18.8% > 5%: the item fails.
    assert (bound(55, 60), bound(49, 60)) == ("83.9%", "72.1%")
    dropped = {f"w{i}" for i in range(30, 36)}
    with chat_server(lambda p: "I cannot say that" if p.split()[-1] in dropped else p) as server:
        models = f'[tool.llmswap.models.worse]\nmodel = "openai/worse"\napi_base = "{server.url}"\napi_key = "{KEY}"\n'
        write(pytester, contract("test_say", cases(60, bad=range(5)), "min_pass_rate=0.7, max_regression_rate=0.05"),
              models=models)
        pytester.runpytest(*RECORD)
        run = pytester.runpytest(*candidates("same=echo", "worse"), "-rA", "--llmswap-retries", "0",
                                 "--llmswap-json", "out.json")
    clean(run)
    run.assert_outcomes(passed=1, failed=1)
    assert item_ids(run) == ["test_say[same]", "test_say[worse]"]
    assert failure(run, "test_say[worse]") == (
        "broken-case rate 10.0%: its upper bound 18.8% is above max_regression_rate 5.0%. Failing cases: "
        "c030: left the word out; c031: left the word out; c032: left the word out; c033: left the word out; "
        "c034: left the word out (and 6 more)")
    out = results(pytester)
    worse = out["summaries"]["candidates"]["worse"]
    # The report's interval is two-sided 95%: exact, beta(0.975; 7, 54).
    assert worse["regressions"] == 6 and worse["regression_rate_ci"][1] == pytest.approx(0.2051, abs=1e-3)
    flips = sorted(c["case_id"] for c in out["cases"] if c["candidate"] == "worse" and c["flip"] == "regression")
    assert flips == [f"c{i:03d}" for i in range(30, 36)]
    assert len([c for c in out["cases"] if c["candidate"] == "worse"]) == 60


# -- the suite-wide default -------------------------------------------------------------------------------------

def test_min_pass_rate_in_pyproject_makes_every_contract_statistical_and_a_contracts_own_wins(pytester):
    # Suite default 0.9. test_clean: 30/30, bound 91.7% >= 90%: passes. test_rough: 24/30, bound 65.7% < 90%:
    # fails. test_lenient: the same 24/30 with its own min_pass_rate=0.6: 65.7% >= 60%, passes.
    assert (bound(30, 30), bound(24, 30)) == ("91.7%", "65.7%")
    rough = cases(30, bad=range(0, 30, 5))
    write(pytester, contract("test_clean", cases(30)), contract("test_rough", rough, prompt="Tell"),
          contract("test_lenient", rough, "min_pass_rate=0.6", prompt="Show"), settings="min_pass_rate = 0.9")
    recorded = pytester.runpytest(*RECORD, "-rA")
    recorded.assert_outcomes(passed=2, failed=1)
    assert item_ids(recorded) == ["test_clean[all-cases]", "test_lenient[all-cases]", "test_rough[all-cases]"]
    assert failure(recorded, "test_rough[all-cases]").startswith(
        "pass rate 24/30 = 80.0%: its lower 95% bound 65.7% is below min_pass_rate 90.0%. ")
    run = pytester.runpytest(*candidates("e=echo"), "-rA")
    run.assert_outcomes(passed=2, failed=1)
    assert item_ids(run) == ["test_clean[e]", "test_lenient[e]", "test_rough[e]"]


def test_per_case_keeps_one_contract_per_case_in_a_statistical_suite(pytester):
    # Suite default 0.9. test_safety (per_case): c001 fails on its own item and fails the run, though 2/3 of a
    # statistical contract would be judged as one item. test_rest stays statistical.
    write(pytester, contract("test_safety", cases(3, bad=[1]), "per_case=True"),
          contract("test_rest", cases(30), prompt="Tell"), settings="min_pass_rate = 0.9")
    recorded = pytester.runpytest(*RECORD, "-rA")
    recorded.assert_outcomes(passed=3, failed=1)
    assert item_ids(recorded) == ["test_rest[all-cases]", "test_safety[c000]", "test_safety[c001]",
                                  "test_safety[c002]"]
    run = pytester.runpytest(*candidates("e=echo"), "-rA")
    run.assert_outcomes(passed=3, failed=1)
    assert any(line.startswith("FAILED test_s.py::test_safety[c001-e] - AssertionError: said bad")
               for line in run.stdout.lines)


# -- bad values -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    ("min_pass_rate=1.5", "llm_contract(min_pass_rate=1.5): must be a number between 0 and 1"),
    ("min_pass_rate=1", "llm_contract(min_pass_rate=1): no number of cases can show a pass rate of 100% with "
                        "confidence, so this could never pass; to require every case to pass, leave min_pass_rate "
                        "out (one item per case)"),
    ("min_pass_rate=0.9, max_regression_rate=-0.1",
     "llm_contract(max_regression_rate=-0.1): must be a number between 0 and 1"),
    ("max_regression_rate=0.05", "llm_contract(max_regression_rate=...) needs min_pass_rate: it belongs to a "
                                 "statistical contract (use min_pass_rate=0 to bound only the regression rate)"),
    ("min_pass_rate=0.9, per_case=True", "llm_contract(per_case=True, min_pass_rate=...): choose one; per_case "
                                         "keeps one item per case, min_pass_rate makes the contract one "
                                         "statistical item per model row"),
])
def test_a_bad_value_in_the_decorator_is_a_one_line_collection_error(pytester, args, message):
    write(pytester, contract("test_say", cases(3), args))
    run = pytester.runpytest(*RECORD)
    assert run.ret == pytest.ExitCode.INTERRUPTED
    run.assert_outcomes(errors=1)
    run.stdout.fnmatch_lines([f"E   pytest_llmswap.contract.decorator.ContractError: {message}"])
    assert "INTERNALERROR" not in run.stdout.str()
    assert not (pytester.path / "__llm_goldens__").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "min_pass_rate = 1.5: must lie in [0, 1]"),
    ('"0.9"', "min_pass_rate = '0.9': must be a number"),
    ("1.0", "min_pass_rate = 1.0: no number of cases can show a pass rate of 100% with confidence, so this could "
            "never pass; to require every case to pass, leave min_pass_rate out (one item per case)"),
])
def test_a_bad_value_in_pyproject_is_a_one_line_usage_error(pytester, value, message):
    write(pytester, contract("test_say", cases(3)), settings=f"min_pass_rate = {value}")
    run = pytester.runpytest(*RECORD)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in run.stderr.lines if line.strip()]
    assert errors == [f"ERROR: {pytester.path / 'pyproject.toml'} [tool.llmswap]: {message}"]


# -- xdist ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_xdist_workers_results_are_merged_with_every_case_in_the_reports(pytester):
    write(pytester, contract("test_stat", cases(50, bad=[10, 20, 30, 40, 49]), "min_pass_rate=0.8"),
          contract("test_strict", cases(50, bad=[10, 20, 30, 40, 49]), "min_pass_rate=0.95", prompt="Tell"),
          contract("test_each", cases(4, bad=[2]), prompt="Show"))
    pytester.runpytest(*RECORD)
    run = pytester.runpytest_subprocess("-n", "2", *candidates("e=echo", "f=echo"), "-rA",
                                        "--llmswap-json", "out.json", "--llmswap-report", "report.html")
    clean(run)
    # 45/50: bound 80.8% >= 80% passes, < 95% fails; test_each: c002 fails on each candidate.
    run.assert_outcomes(passed=2 + 6, failed=2 + 2)
    assert item_ids(run) == sorted(
        [f"test_{t}[{m}]" for t in ("stat", "strict") for m in "ef"]
        + [f"test_each[c{i:03d}-{m}]" for i in range(4) for m in "ef"])
    rows = results(pytester)["cases"]
    keys = [(c["contract"].split("::")[1], c["case_id"], c["candidate"]) for c in rows]
    assert len(keys) == len(set(keys)) == 2 * (50 + 50 + 4)  # each case once, from whichever worker ran it
    assert set(keys) == {(t, f"c{i:03d}", m) for t, n in (("test_stat", 50), ("test_strict", 50), ("test_each", 4))
                         for i in range(n) for m in "ef"}
    html = (pytester.path / "report.html").read_text()
    for i in range(50):
        assert f'<td class="mono">c{i:03d}</td>' in html


# -- progress ---------------------------------------------------------------------------------------------------

def progress_lines(text: str, model: str) -> list[str]:
    return re.findall(rf"^{re.escape(model)}: [\d,]+/[\d,]+ calls.*$", text, re.M)


def test_a_finished_models_rate_and_time_stop_when_it_finishes():
    now, out = [100.0], []
    progress = Progress(out.append, tty=True, clock=lambda: now[0])
    progress.start("fast", 2)
    progress.start("slow", 2)
    now[0] += 1
    progress.advance("fast")
    progress.advance("fast")
    now[0] += 99  # the tty line is redrawn while "slow" runs: "fast" keeps its own 2/s and 1 s
    progress.advance("slow")
    assert out[-1] == "\rfast: 2/2 calls, 2/s, done in 1s | slow: 1/2 calls, 0.01/s, ~1m40s left"
    now[0] += 100
    progress.finish()
    assert out[-2].startswith("\rfast: 2/2 calls, 2/s, done in 1s | slow: 1/2 calls, 0.005/s")


@pytest.mark.slow
def test_progress_in_a_pipe_is_a_line_per_tenth_per_model(pytester):
    write(pytester, contract("test_stat", cases(40, bad=[3]), "min_pass_rate=0.8"),
          contract("test_each", cases(10), prompt="Tell"))
    recorded = pytester.runpytest_subprocess(*RECORD)
    lines = progress_lines(recorded.stdout.str(), "echo")
    assert [line.split(" calls")[0] for line in lines] == [f"echo: {n}/50" for n in range(5, 51, 5)]
    assert re.fullmatch(r"echo: 50/50 calls, [\d,.]+/s, done in \d+s", lines[-1])
    # Two names for one model (its calls are made once): each name still counts every answer it gets.
    run = pytester.runpytest_subprocess(*candidates("e=echo", "f=echo"))
    text = run.stdout.str()
    for name in ("e", "f"):
        lines = progress_lines(text, name)
        assert [line.split(" calls")[0] for line in lines] == [f"{name}: {n}/50" for n in range(5, 51, 5)], text
        assert "done in" in lines[-1]
    assert "\r" not in text
    # The progress comes before the first test's outcome.
    assert text.index("e: 50/50 calls") < text.index("test_s.py ")


@pytest.mark.slow
def test_under_xdist_the_worker_that_calls_the_models_prints_its_progress_on_stderr(pytester):
    write(pytester, contract("test_stat", cases(40), "min_pass_rate=0.8"),
          contract("test_each", cases(10), prompt="Tell"))
    recorded = pytester.runpytest_subprocess(*RECORD, "-n", "2")
    recorded.assert_outcomes(passed=11)
    lines = re.findall(r"^\[(gw\d)\] echo: ([\d,]+)/50 calls.*$", recorded.stderr.str(), re.M)
    assert len({worker for worker, _ in lines}) == 1, recorded.stderr.str()  # the other worker found the store full
    assert [int(n) for _, n in lines] == list(range(5, 51, 5))
    assert not progress_lines(recorded.stdout.str(), "echo")
    # Every answer stored: no worker calls a model, and none prints progress.
    replayed = pytester.runpytest_subprocess(*candidates("e=echo"), "-n", "2")
    replayed.assert_outcomes(passed=11)
    assert not re.search(r"[\d,]+/[\d,]+ calls", replayed.stderr.str() + replayed.stdout.str())


@pytest.mark.slow
def test_progress_on_a_tty_is_one_line_rewritten_in_place(pytester):
    write(pytester, contract("test_stat", cases(30), "min_pass_rate=0.8"))
    pytester.runpytest(*RECORD)
    controller, terminal = os.openpty()
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *candidates("e=echo", "f=echo")],
                            cwd=pytester.path, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, "no output for 60 s"
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())  # colours off
    drawn = re.findall(r"\r(e: [^\r\n]*)", text)
    assert drawn and re.fullmatch(r"e: 30/30 calls, [\d,.]+/s, done in \d+s \| f: 30/30 calls, [\d,.]+/s, "
                                  r"done in \d+s *", drawn[-1]), text
    assert not progress_lines(text, "e")  # no line of its own: the one line is rewritten
