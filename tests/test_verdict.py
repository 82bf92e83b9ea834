"""The verdict table of docs/cost.md, row by row (issues 8 and 16).

Each rule is a plain unit test on ``aggregate.evidence`` and ``cost.verdict``, the pure functions the plugin calls
(their calibration is simulated in tests/test_calibration.py). A few runs check the whole way from a suite to the
terminal line, the Markdown row and the reports, with pytester against local HTTP servers: goldens are recorded on the built-in ``echo`` model (the golden of case ``cNN`` is ``"Say wNN"``); candidates are
named litellm models pointing at :class:`openai_server.ChatServer` instances on 127.0.0.1 whose answer (or fault)
is chosen per prompt. The contract's check is ``case["w"] in output.text.split()``, so every golden passes and a
candidate answer fails exactly when it leaves out the word. Every expected number below is worked out by hand in
the test's comment (the statistics themselves are checked against scipy in tests/test_stats.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import scipy.stats

from openai_server import chat_server
from pytest_llmswap.verdict.aggregate import evidence
from pytest_llmswap.verdict.cost import (RULE_ABOVE_MAX, RULE_BREAKS_MOST, RULE_DROP_IN, RULE_FAILED_CALLS, RULE_NO_ANSWER,
                                 RULE_TOO_FEW, RULE_WORSE, verdict)
from pytest_llmswap.verdict.stats import NoiseExcess
from pytest_llmswap.verdict.figures import pct
from pytest_llmswap.settings import Settings

SETTINGS = Settings()

KEY = "sk-test-verdict-0000000000"


def word(prompt: str) -> str:
    return prompt.split()[-1]


def same(prompt: str) -> str:
    """The incumbent's own answer (echo): identical to the golden."""
    return prompt


def breaks(words: set[str]) -> Callable[[str], str]:
    """Answers like the incumbent except on ``words``, where the answer leaves the word out (the check fails)."""
    return lambda prompt: "I cannot say that" if word(prompt) in words else prompt


def write_suite(pytester: pytest.Pytester, n: int, urls: dict[str, str], *, settings: str = "",
                tolerance: dict | None = None) -> list[str]:
    """``n`` cases ``c00``.. with words ``w0``..; one named model per ``urls`` entry. Returns the words."""
    models = "\n".join(f'[tool.llmswap.models.{name}]\nmodel = "openai/{name}-model"\napi_base = "{url}"\n'
                       f'api_key = "{KEY}"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n'
                       for name, url in urls.items())
    pytester.makefile(".toml", pyproject=f"[tool.llmswap]\nsemantic = false\n{settings}\n\n{models}")
    cases = [{"id": f"c{i:02d}", "w": f"w{i}"} for i in range(n)]
    pytester.makepyfile(test_say=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Say {{{{ w }}}}", cases={cases!r}, tolerance={tolerance!r}, calls_per_month=1000)
def test_say(output, case):
    assert case["w"] in output.text.split()
""")
    return [c["w"] for c in cases]


def record(pytester: pytest.Pytester, *args: str) -> None:
    rec = pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", *args)
    assert rec.ret == 0, rec.stdout.str()


def replay(pytester: pytest.Pytester, *names: str, args: tuple[str, ...] = ()) -> tuple[pytest.RunResult, dict]:
    """Run the candidates with every report requested; returns the run and the JSON results."""
    argv = [a for n in names for a in ("--candidate-model", n)]
    result = pytester.runpytest(*argv, "--llmswap-json", "out.json", "--llmswap-markdown", "summary.md",
                                "--llmswap-report", "report.html", "--llmswap-retries", "0", *args)
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    return result, json.loads((pytester.path / "out.json").read_text())


def verdict_line(result: pytest.RunResult, name: str) -> str:
    """The candidate's one terminal line ``NAME: VERDICT: HEADLINE``."""
    pattern = re.compile(rf"{re.escape(name)}: (drop-in|migrate with rework|not recommended|inconclusive): ")
    lines = [line for line in result.stdout.lines if pattern.match(line)]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def markdown_row(pytester: pytest.Pytester, name: str) -> list[str]:
    """The candidate's row of the Markdown table: verdict, pass rate, regressions, failed calls, ..."""
    text = (pytester.path / "summary.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| **{name}** |"))  # the verdict table's
    return [cell.strip() for cell in row.strip().strip("|").split("|")][1:]


# -- row 1: no answer -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("status", "n"), [(401, 80), (500, 8)])
def test_every_call_failing_is_inconclusive_and_every_report_is_still_written(pytester, litellm_loaded, status, n):
    with chat_server(same) as good, chat_server(same, fault_for=lambda p: status) as down:
        write_suite(pytester, n, {"good": good.url, "down": down.url})
        record(pytester)
        result, out = replay(pytester, "good", "down")
        assert not down.answered
        # --llmswap-retries 0: one attempt per case; a refused key (401) stops calls to the model after the
        # requests already in flight (the default concurrency, 8).
        assert len(down.seen) == n if status != 401 else 1 <= len(down.seen) <= 8
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=n, failed=n)
    for name in ("out.json", "summary.md", "report.html"):
        assert (pytester.path / name).stat().st_size > 0, name
    verdicts, candidates = out["summaries"]["verdicts"], out["summaries"]["candidates"]
    assert verdicts["down"]["verdict"] == "inconclusive" and verdicts["down"]["rule"] == RULE_NO_ANSWER
    error = candidates["down"]["first_error"]
    assert "\n" not in error and f"injected fault {status}" in error and KEY not in error
    assert verdict_line(result, "down") == f"down: inconclusive: every call failed ({n} of {n} calls failed): {error}"
    assert candidates["down"]["failed_calls"] == n and candidates["down"]["failed_call_rate"] == 1.0
    assert candidates["down"]["pass_rate"] == 0.0 and candidates["down"]["answered"] == 0
    assert markdown_row(pytester, "down")[:4] == ["❔ inconclusive", "0.0%", "0", str(n)]
    html = (pytester.path / "report.html").read_text()
    assert f"{n} of {n} calls failed" in html
    # The healthy candidate of the same run gets its own verdict: 80 identical answers are a drop-in (row 7),
    # 8 are too few to bound the broken-case rate (row 6).
    expected = ("drop-in", RULE_DROP_IN) if n >= 80 else ("inconclusive", RULE_TOO_FEW)
    assert (verdicts["good"]["verdict"], verdicts["good"]["rule"]) == expected
    assert verdict_line(result, "good").startswith(f"good: {expected[0]}: ")
    assert markdown_row(pytester, "good")[2:4] == ["0", "0"]


# -- row 4: failed calls (and rows 2/3 still apply to what was answered) ----------------------------------------

@pytest.mark.slow
def test_failed_calls_after_retries_count_as_failures_and_make_the_verdict_inconclusive(pytester, litellm_loaded):
    outage = {"on": True}
    fault = lambda p: 500 if outage["on"] and word(p) in {"w2", "w5"} else None  # noqa: E731
    with chat_server(same, fault_for=fault) as flaky, \
            chat_server(breaks({"w0", "w1", "w3", "w4", "w6", "w7"}), fault_for=fault) as wreck:
        write_suite(pytester, 8, {"flaky": flaky.url, "wreck": wreck.url})
        record(pytester)
        result, out = replay(pytester, "flaky", "wreck", args=("--llmswap-retries", "1", "--llmswap-backoff", "0.01"))
        # Each failing prompt was tried twice (one retry), the others once.
        assert sorted(flaky.prompts()) == sorted([f"Say w{i}" for i in range(8)] + ["Say w2", "Say w5"])
        s, v = out["summaries"]["candidates"]["flaky"], out["summaries"]["verdicts"]["flaky"]
        assert (s["failed_calls"], s["failed_call_rate"], s["answered"]) == (2, 0.25, 6)
        assert s["pass_rate"] == 6 / 8  # the denominator is every case: the two failed calls are failures
        assert "InternalServerError after 2 attempt(s)" in s["first_error"]
        assert (v["verdict"], v["rule"]) == ("inconclusive", RULE_FAILED_CALLS)
        line = verdict_line(result, "flaky")
        assert line.startswith("flaky: inconclusive: 2 of 8 calls failed (25.0%); rerun to complete the evidence")
        result.stdout.fnmatch_lines(["flaky: *", "  pass rate 75.0%: 6 of 8 cases passed*; 2 failed calls, first: "
                                     "flaky: InternalServerError after 2 attempt(s)*"])
        assert markdown_row(pytester, "flaky")[:4] == ["❔ inconclusive", "75.0%", "0", "2"]
        assert "2 of 8 calls failed (25.0%)" in (pytester.path / "report.html").read_text()
        # Failed calls do not hide a candidate its answered cases already condemn: all 6 answered cases broken
        # (p = 0.5 ** 6 < alpha / 2; exact lower end 54% of 6 cases is more than half of the 6 the incumbent passes).
        s, v = out["summaries"]["candidates"]["wreck"], out["summaries"]["verdicts"]["wreck"]
        assert (s["failed_calls"], s["regressions"], s["pass_rate"]) == (2, 6, 0.0)
        assert (v["verdict"], v["rule"]) == ("not recommended", RULE_BREAKS_MOST)
        assert markdown_row(pytester, "wreck")[:4] == ["❌ not recommended", "0.0%", "6", "2"]

        # A rerun calls only what failed: the answers already received are kept.
        outage["on"] = False
        seen = len(flaky.seen)
        _, out = replay(pytester, "flaky")
        assert sorted(flaky.prompts()[seen:]) == ["Say w2", "Say w5"]
    s, v = out["summaries"]["candidates"]["flaky"], out["summaries"]["verdicts"]["flaky"]
    assert (s["failed_calls"], s["pass_rate"]) == (0, 1.0)
    assert (v["verdict"], v["rule"]) == ("inconclusive", RULE_TOO_FEW)  # complete now, but 8 cases are few


# -- row 2: breaks most cases ------------------------------------------------------------------------------------

def judge(golden_passes, samples, held, **calls):
    found = evidence(golden_passes, samples, held, SETTINGS, **calls)
    return found, verdict(found, SETTINGS)


def test_breaking_every_case_of_ten_is_not_recommended() -> None:
    found, v = judge([1] * 10, [1] * 10, [False] * 10)
    assert found.p_worse == pytest.approx(0.5 ** 10)
    assert (v.verdict, v.rule) == ("not recommended", RULE_BREAKS_MOST)
    assert v.headline == "not recommended: breaks 10 of the 10 cases the incumbent passes"


def test_breaking_four_of_four_is_too_few_to_flag() -> None:
    # p = 0.5 ** 4 = 0.0625: four cases cannot show that the candidate is worse than the incumbent's own noise.
    found, v = judge([1] * 4, [1] * 4, [False] * 4)
    assert (v.verdict, v.rule) == ("inconclusive", RULE_TOO_FEW)
    assert "more cases at this rate would not show it" in v.headline and found.cases_needed is None


def test_a_model_unrelated_to_the_task_is_not_recommended_on_tolerance_alone(pytester, litellm_loaded) -> None:
    # Every check passes but every answer is beyond tolerance: 6 broken cases of 6 (p = 0.5 ** 6 = 0.016).
    with chat_server(wordy) as cand:
        write_suite(pytester, 6, {"cand": cand.url}, tolerance={"edit": 0.8})
        record(pytester)
        result, out = replay(pytester, "cand")
    s, v = out["summaries"]["candidates"]["cand"], out["summaries"]["verdicts"]["cand"]
    # One pass rate: a case beyond tolerance does not pass, whatever its checks say.
    assert (s["pass_rate"], s["checks_passed"], s["regressions"], s["exceeded"]) == (0.0, 6, 6, 6)
    assert (v["verdict"], v["rule"]) == ("not recommended", RULE_BREAKS_MOST)
    assert v["exceeded_contracts"] == ["test_say.py::test_say"] == v["rework_contracts"]
    assert verdict_line(result, "cand") == "cand: not recommended: breaks 6 of the 6 cases the incumbent passes"
    assert markdown_row(pytester, "cand")[0] == "❌ not recommended"
    assert "Broken-case rate" in (pytester.path / "report.html").read_text()


def test_a_noisy_incumbents_own_replay_is_never_told_it_breaks_most() -> None:
    # The incumbent passes fewer than half its cases (2 of 5 samples each); its replay fails 3 of 5 times.
    rng = __import__("numpy").random.default_rng(4)
    flagged = 0
    for _ in range(200):
        passes = rng.binomial(5, 0.4, 80)
        found, v = judge(passes, [5] * 80, rng.random(80) < 0.4)
        flagged += v.verdict in ("not recommended", "migrate with rework")
    assert flagged <= 10  # at most 5% of 200


# -- row 3: broken-case rate above the maximum ------------------------------------------------------------------

def test_a_rate_shown_above_the_maximum_is_not_recommended() -> None:
    found, v = judge([1] * 100, [1] * 100, [True] * 84 + [False] * 16)
    low, high = found.regression_rate_ci
    assert low > 0.05 and found.p_worse < 0.05
    assert (v.verdict, v.rule) == ("not recommended", RULE_ABOVE_MAX)
    assert v.headline == (f"not recommended: broken-case rate 16.0% [{pct(low)}, {pct(high)}] is above the maximum "
                          "5.0%")


def test_fixed_cases_never_make_a_broken_candidate_a_drop_in() -> None:
    # The distilled student of the issue: breaks 7 of the 80 cases, fixes 14 others.
    golden = [1] * 66 + [0] * 14
    held = [False] * 7 + [True] * 59 + [True] * 14
    found, v = judge(golden, [1] * 80, held)
    assert found.regressions == 7 and found.improvements == 14 and found.net_rate < 0
    # K = 1: the McNemar test (7 against 14) cannot say it is worse than a noisy incumbent: not a drop-in, and why.
    assert (v.verdict, v.rule) == ("inconclusive", RULE_TOO_FEW)
    assert any("record K >= 3 samples" in r for r in v.reasons)
    # K = 5 of a deterministic incumbent: the 7 broken cases are beyond its noise, so the candidate is flagged.
    found, v = judge([5 * g for g in golden], [5] * 80, held)
    assert found.noise_measured and found.regression_rate_ci[0] > 0
    assert v.verdict in ("migrate with rework", "not recommended") and v.rule in (RULE_WORSE, RULE_ABOVE_MAX)


# -- row 4: failed calls ----------------------------------------------------------------------------------------

def test_failed_calls_above_the_tolerated_share_are_inconclusive() -> None:
    found, v = judge([1] * 78, [1] * 78, [True] * 78, cases=80, failed_calls=2, first_error="cand: 500")
    assert found.failed_call_rate == 0.025
    assert (v.verdict, v.rule) == ("inconclusive", RULE_FAILED_CALLS)
    assert v.headline.startswith("inconclusive: 2 of 80 calls failed (2.5%); rerun to complete the evidence")


# -- row 5: worse than the incumbent ----------------------------------------------------------------------------

def wordy(prompt: str) -> str:
    return prompt + " and then a great many more words that the incumbent never said"


def test_drift_beyond_the_incumbents_noise_in_most_cases_is_rework() -> None:
    common = NoiseExcess(cases=80, beyond=40, expected_at_most=80 / 6, p_value=1e-9)
    found, v = judge([5] * 80, [5] * 80, [True] * 80, noise=common)
    assert (v.verdict, v.rule) == ("migrate with rework", RULE_WORSE)
    assert v.reasons[0] == "drift beyond the incumbent's own noise in 40 of 80 cases (50%, above 10%)"
    chance = NoiseExcess(cases=80, beyond=40, expected_at_most=80 / 6, p_value=0.2)  # not significant
    assert judge([5] * 80, [5] * 80, [True] * 80, noise=chance)[1].rule == RULE_DROP_IN


@pytest.mark.slow
def test_drift_beyond_the_incumbents_noise_is_measured_end_to_end(pytester, litellm_loaded):
    with chat_server(wordy) as cand, chat_server(same) as twin:
        write_suite(pytester, 6, {"cand": cand.url, "twin": twin.url})
        # K = 3 identical echo samples: the noise floor is 1.0, so every wordy answer is beyond it.
        record(pytester, "--llmswap-samples", "3")
        result, out = replay(pytester, "cand", "twin")
    s = out["summaries"]["candidates"]["cand"]
    assert (s["pass_rate"], s["exceeded"], s["drifted"], s["drift_cases"]) == (1.0, 0, 6, 6)
    # An answer identical to the incumbent's is beyond noise with probability at most 1 / (K + 1).
    assert s["noise_p_value"] == pytest.approx(0.25 ** 6)
    assert out["summaries"]["verdicts"]["cand"]["rule"] == RULE_WORSE
    assert out["summaries"]["candidates"]["twin"]["drifted"] == 0


# -- row 6: too few cases ----------------------------------------------------------------------------------------

def test_an_inconclusive_verdict_says_how_many_cases_would_decide() -> None:
    found, v = judge([1] * 80, [1] * 80, [True] * 79 + [False])
    assert (v.verdict, v.rule) == ("inconclusive", RULE_TOO_FEW)
    needed = found.cases_needed
    assert needed is not None and needed > 80
    assert f"about {needed:,} cases would show a broken-case rate below 5.0%" in v.headline
    # And that many cases at the same rate and spread do bound it.
    scaled = round(needed / 80)
    more, _ = judge([1] * 80 * scaled, [1] * 80 * scaled, ([True] * 79 + [False]) * scaled)
    assert more.regression_rate_ci[1] <= 0.05 + 0.002


def test_a_strictly_better_candidate_of_a_noisy_incumbent_is_a_drop_in() -> None:
    # K = 5 samples, the incumbent passes 4 of 5 on every case; the candidate passes all 80 (the issue's
    # "inconclusive: could be up to 10.1%", which the noise margin made wider the more samples were recorded).
    found, v = judge([4] * 80, [5] * 80, [True] * 80)
    assert (v.verdict, v.rule) == ("drop-in", RULE_DROP_IN)
    assert found.regression_rate == 0 and found.regression_rate_ci[1] < 0.05


# -- row 7: drop-in ----------------------------------------------------------------------------------------------

def test_a_drop_in_headline_claims_only_what_was_measured() -> None:
    _, k1 = judge([1] * 100, [1] * 100, [True] * 100)
    assert k1.rule == RULE_DROP_IN and "noise" not in k1.headline  # K = 1: drift was never measured
    measured = NoiseExcess(cases=100, beyond=1, expected_at_most=100 / 6, p_value=1.0)
    _, k5 = judge([5] * 100, [5] * 100, [True] * 100, noise=measured)
    assert k5.headline.endswith("no failed call and drift within the incumbent's noise")


def test_thresholds_are_exact_sums_and_small_bounds_keep_their_digits() -> None:
    found, _ = judge([1] * 207, [3] * 207, [True] * 207)
    assert found.incumbent_passes == 69  # 207 thirds, not 68.99999999999996
    assert pct(0.0003) == "0.03%" and pct(0.0) == "0.0%" and pct(0.123) == "12.3%"


@pytest.mark.slow
def test_a_clean_suite_is_drop_in_end_to_end(pytester, litellm_loaded):
    with chat_server(same) as good, chat_server(breaks({"w3", "w20", "w41", "w77"})) as four:
        write_suite(pytester, 80, {"good": good.url, "four": four.url})
        record(pytester)
        result, out = replay(pytester, "good", "four")
    verdicts, candidates = out["summaries"]["verdicts"], out["summaries"]["candidates"]
    high = 1 - 0.025 ** (1 / 80)  # the exact upper end for 0 of 80
    assert candidates["good"]["regression_rate_ci"] == [0.0, pytest.approx(high)]
    assert (verdicts["good"]["verdict"], verdicts["good"]["rule"]) == ("drop-in", RULE_DROP_IN)
    assert verdict_line(result, "good") == f"good: drop-in: broken-case rate 0.0% (at most {high:.1%}) is within 5.0%, no failed call"
    # 4 of 80 is exactly 5%: the suite cannot show it is below, and cannot show the candidate is worse (row 6).
    assert candidates["four"]["regressions"] == 4 and candidates["four"]["regression_rate"] == 0.05
    assert (verdicts["four"]["verdict"], verdicts["four"]["rule"]) == ("inconclusive", RULE_TOO_FEW)
    assert verdicts["four"]["rework_contracts"] == ["test_say.py::test_say"]  # hard regressions
    assert markdown_row(pytester, "good")[0] == "✅ drop-in"
