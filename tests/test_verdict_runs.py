"""Issue 8 beyond the verdict table: the incumbent's noise as the yardstick (K samples), settings checked before any
call, and local ``hf:`` models (costs measured like for like, KL / top-1 tolerances, sampling parameters).

The API models are :class:`openai_server.ChatServer` instances on 127.0.0.1 (see tests/test_verdict.py); the local
model is the committed example teacher (and student), run in subprocesses because torch cannot be imported
twice into one process by pytester's in-process runs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from openai_server import chat_server
from pytest_llmswap.cost import RULE_DROP_IN, RULE_TOO_FEW, RULE_WORSE
from test_verdict import KEY, markdown_row, record, replay, same, verdict_line, word, write_suite

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEACHER, STUDENT = EXAMPLES / "models" / "teacher", EXAMPLES / "models" / "student"


# -- the incumbent's noise is the yardstick ----------------------------------------------------------------------

def draw(salt: str, prompt: str, index: int) -> float:
    """A reproducible uniform number in [0, 1) for the ``index``-th answer to ``prompt``."""
    return int(hashlib.sha256(f"{salt}|{prompt}|{index}".encode()).hexdigest()[:12], 16) / 16 ** 12


class Sampler:
    """Answers ``"<prompt> -> yes"`` (the check passes) with the case's probability, else ``"... -> no"``: the
    n-th call with a prompt uses draw n, so K samples of a case are K independent, reproducible draws."""

    def __init__(self, salt: str, pass_probability, shift: float = 0.0) -> None:
        self.salt, self.probability, self.shift = salt, pass_probability, shift
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        with self.lock:
            index = self.calls[prompt]
            self.calls[prompt] += 1
        passes = draw(self.salt, prompt, index) < self.probability(prompt) - self.shift
        return f"{prompt} -> {'yes' if passes else 'no'}"


@pytest.mark.slow
def test_a_twin_of_a_noisy_incumbent_is_drop_in_and_a_worse_one_is_not(pytester, litellm_loaded):
    # 80 cases: 10 the incumbent passes half the time, 70 it always passes. The twin draws from the same
    # distribution; "worse" passes each case with probability 0.3 lower (0.2 and 0.7).
    #
    # Why the twin is a drop-in (checked by simulating the verdict rules on 20,000 draws of this design: 99.85%
    # drop-in, and "worse" was never a drop-in in 2,000): the always-passed cases carry no information (all
    # K + 1 answers pass); on the 10 noisy ones the twin is one more sample, so p_worse is below alpha = 0.005
    # with probability at most 0.005, and the net regression rate's upper bound, (net + 2.58 * se) / 80 with
    # se = 1.2 * sqrt(sum p (1 - p)) <= 1.9 and net ~ 0 +- 1.7, stays below max_regression_rate = 0.2. "worse"
    # fails about 21 of the 70 always-passed cases (hard regressions) and nets about 3 more on the noisy ones.
    def probability(prompt: str) -> float:
        return 0.5 if int(word(prompt)[1:]) < 10 else 1.0

    incumbent, twin, worse = Sampler("incumbent", probability), Sampler("twin", probability), \
        Sampler("worse", probability, shift=0.3)
    with chat_server(incumbent) as inc, chat_server(twin) as t, chat_server(worse) as w:
        write_suite(pytester, 80, {"inc": inc.url, "twin": t.url, "worse": w.url},
                    settings="alpha = 0.005\nmax_regression_rate = 0.2")
        (pytester.path / "test_say.py").write_text((pytester.path / "test_say.py").read_text().replace(
            'assert case["w"] in output.text.split()', 'assert output.text.endswith("yes")'))
        rec = pytester.runpytest("--incumbent-model", "inc", "--llmswap-record", "new", "--llmswap-samples", "5")
        assert rec.ret in (0, 1)  # the incumbent fails some of its own noisy samples
        assert set(incumbent.calls.values()) == {5}
        result, out = replay(pytester, "twin", "worse")
    summaries, cases = out["summaries"], out["cases"]
    twin_cases = [c for c in cases if c["candidate"] == "twin"]
    fractions = [sum(s["passed"] for s in c["golden"]) / 5 for c in twin_cases]
    assert 0 < min(fractions) < 1 and max(fractions) == 1  # the incumbent really is noisy on some cases
    # Regressions and improvements weigh each flip by the incumbent's pass fraction over its 5 samples.
    expected_regressions = sum(f for c, f in zip(twin_cases, fractions) if not c["candidate_passed"])
    expected_improvements = sum(1 - f for c, f in zip(twin_cases, fractions) if c["candidate_passed"])
    s = summaries["candidates"]["twin"]
    assert s["regressions"] == pytest.approx(expected_regressions)
    assert s["improvements"] == pytest.approx(expected_improvements)
    assert summaries["verdicts"]["twin"]["verdict"] == "drop-in", summaries["verdicts"]["twin"]["headline"]
    assert verdict_line(result, "twin").startswith("twin: drop-in: ")
    assert summaries["verdicts"]["worse"]["verdict"] != "drop-in"
    assert summaries["candidates"]["worse"]["net_regressions"] > 8  # expected about 24, sd about 4


def test_a_named_field_value_the_incumbent_gave_in_any_sample_is_not_a_mismatch(pytester, litellm_loaded):
    categories = ["billing", "bug", "bug"]  # the incumbent's n-th answer to a prompt, for n = 0, 1, 2
    counts: Counter[str] = Counter()

    def incumbent(prompt: str) -> str:
        counts[prompt] += 1
        return json.dumps({"word": word(prompt), "category": categories[(counts[prompt] - 1) % 3]})

    allowed: dict[str, str] = {}  # per word: a category the incumbent gave in some sample, but not in sample 0
    with chat_server(incumbent) as inc, \
            chat_server(lambda p: json.dumps({"word": word(p), "category": allowed[word(p)]})) as given, \
            chat_server(lambda p: json.dumps({"word": word(p), "category": "account"})) as never:
        write_suite(pytester, 4, {"inc": inc.url, "given": given.url, "never": never.url})
        (pytester.path / "test_say.py").write_text((pytester.path / "test_say.py").read_text().replace(
            "tolerance=None", 'tolerance={"fields": ["category"]}, output="json"').replace(
            'assert case["w"] in output.text.split()', 'assert output.json["word"] == case["w"]'))
        rec = pytester.runpytest("--incumbent-model", "inc", "--llmswap-record", "new", "--llmswap-samples", "3")
        assert rec.ret == 0, rec.stdout.str()
        goldens = json.loads((pytester.path / "__llm_goldens__" / "test_say.json").read_text())
        for golden in goldens["contracts"]["test_say"]["cases"].values():
            seen = [json.loads(s["text"])["category"] for s in golden["samples"]]
            assert sorted(seen) == sorted(categories)
            allowed[golden["variables"]["w"]] = "bug" if seen[0] == "billing" else "billing"
        result, out = replay(pytester, "given", "never")
    s, v = out["summaries"]["candidates"], out["summaries"]["verdicts"]
    assert s["given"]["exceeded"] == 0 and s["given"]["pass_rate"] == 1.0
    assert v["given"]["rule"] == RULE_TOO_FEW  # 4 clean cases: inconclusive, not rework
    assert s["never"]["exceeded"] == 4 and v["never"]["rule"] == RULE_WORSE
    messages = [c["exceeded"] for c in out["cases"] if c["candidate"] == "never"]
    assert all(m == ['field \'category\': golden "billing" or "bug", candidate "account"']
               or m == ['field \'category\': golden "bug" or "billing", candidate "account"'] for m in messages), messages
