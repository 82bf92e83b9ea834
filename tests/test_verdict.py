"""The verdict table of docs/cost.md, row by row, end to end (issue 8): pytester runs against local HTTP servers.

Goldens are recorded on the built-in ``echo`` model (the golden of case ``cNN`` is ``"Say wNN"``); candidates are
named litellm models pointing at :class:`openai_server.ChatServer` instances on 127.0.0.1 whose answer (or fault)
is chosen per prompt. The contract's check is ``case["w"] in output.text.split()``, so every golden passes and a
candidate answer fails exactly when it leaves out the word. Every expected number below is worked out by hand in
the test's comment (the statistics themselves are checked against scipy in tests/test_stats.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import pytest

from openai_server import chat_server
from pytest_llmswap.cost import (RULE_ABOVE_MAX, RULE_BREAKS_MOST, RULE_DROP_IN, RULE_FAILED_CALLS, RULE_NO_ANSWER,
                                 RULE_TOO_FEW, RULE_WORSE)

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
@pytest.mark.parametrize(("status", "n"), [(401, 60), (500, 8)])
def test_every_call_failing_is_inconclusive_and_every_report_is_still_written(pytester, litellm_loaded, status, n):
    with chat_server(same) as good, chat_server(same, fault_for=lambda p: status) as down:
        write_suite(pytester, n, {"good": good.url, "down": down.url})
        record(pytester)
        result, out = replay(pytester, "good", "down")
        assert len(down.seen) == n and not down.answered  # --llmswap-retries 0: one attempt per case
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
    assert f"{n} of {n} call(s) failed" in html
    # The healthy candidate of the same run gets its own verdict: 60 identical answers are a drop-in (row 7),
    # 8 are too few to bound the regression rate (row 6).
    expected = ("drop-in", RULE_DROP_IN) if n >= 60 else ("inconclusive", RULE_TOO_FEW)
    assert (verdicts["good"]["verdict"], verdicts["good"]["rule"]) == expected
    assert verdict_line(result, "good").startswith(f"good: {expected[0]}: ")
    assert markdown_row(pytester, "good")[2:4] == ["0", "0"]
