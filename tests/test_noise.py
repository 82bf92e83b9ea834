"""Noise floor: an identical sampler stays within the incumbent's own spread; a drifted one does not."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from rapidfuzz import fuzz

from pytest_llmswap.drift.noise import UNKNOWN_FLOOR_MESSAGE, best_similarity, beyond_noise, judge, noise_floor
from pytest_llmswap.verdict.stats import noise_excess

# A synthetic "model at temperature > 0": each slot picks its favourite wording with probability 0.8.
SLOTS = [["The", "This"], ["ticket", "request", "message"], ["is", "looks", "seems"],
         ["about", "related to", "regarding"], ["billing", "an invoice", "a payment"], ["and", "so"],
         ["should go", "goes", "belongs"], ["to", "with"], ["finance", "the billing team", "accounts"], [".", "!"]]
Sampler = Callable[[random.Random], str]


def incumbent(rng: random.Random) -> str:
    return " ".join(opts[0] if rng.random() < 0.8 else rng.choice(opts[1:]) for opts in SLOTS)


def drifted(rng: random.Random) -> str:
    # Same task and vocabulary, different habits: favours each slot's last wording.
    return " ".join(opts[-1] if rng.random() < 0.8 else rng.choice(opts[:-1]) for opts in SLOTS)


def edit(a: str, b: str) -> float:
    return fuzz.ratio(a, b) / 100


def flags(candidate: Sampler, k: int, cases: int = 400, seed: int = 0) -> list[bool | None]:
    rng = random.Random(seed)
    out = []
    for _ in range(cases):
        golden = [incumbent(rng) for _ in range(k)]
        out.append(judge(candidate(rng), golden, edit).beyond_noise)
    return out


def flag_rate(candidate: Sampler, k: int, cases: int = 400, seed: int = 0) -> float:
    return sum(map(bool, flags(candidate, k, cases, seed))) / cases


def test_identical_sampler_shows_no_drift_beyond_the_floor() -> None:
    assert flag_rate(incumbent, k=5) <= 0.05
    assert flag_rate(incumbent, k=3) <= 0.15
    # Suite level: the flags are well within what an identical model may produce.
    for k in (2, 3, 5):
        assert noise_excess(flags(incumbent, k, cases=200, seed=k), [k] * 200).p_value > 0.5


def test_drifted_sampler_is_caught() -> None:
    assert flag_rate(drifted, k=5) >= 0.45
    assert flag_rate(drifted, k=3) >= 0.7
    assert noise_excess(flags(drifted, 5, cases=50), [5] * 50).p_value < 1e-6


def test_flag_rate_of_an_identical_sampler_respects_the_exchangeability_bound() -> None:
    # Any exchangeable sampler: here a uniform one over few distinct answers (many exact ties).
    def coarse(rng: random.Random) -> str:
        return rng.choice(["a b c", "a b d", "x y z", "a y c"])

    rng = random.Random(5)
    for k in (2, 3, 4):
        rate = sum(bool(judge(coarse(rng), [coarse(rng) for _ in range(k)], edit).beyond_noise)
                   for _ in range(3000)) / 3000
        assert rate <= 1 / (k + 1) + 0.02


def test_comparing_with_one_sample_and_the_mean_spread_would_cry_wolf() -> None:
    # The naive reading of "the golden" (its first sample; the floor as the mean pairwise similarity)
    # flags the incumbent against itself about half the time: the rule above is not a formality.
    rng = random.Random(1)
    flagged = 0
    for _ in range(400):
        golden = [incumbent(rng) for _ in range(5)]
        pairs = [edit(a, b) for i, a in enumerate(golden) for b in golden[i + 1:]]
        flagged += edit(incumbent(rng), golden[0]) < sum(pairs) / len(pairs)
    assert flagged / 400 > 0.3


def test_two_samples_give_a_weak_floor() -> None:
    # With K=2 the single golden pair is the closest of three exchangeable answers a third of the time,
    # as the module documentation warns.
    assert flag_rate(incumbent, k=2, cases=600) == pytest.approx(1 / 3, abs=0.07)


def test_candidate_equal_to_any_golden_sample_is_never_beyond_noise() -> None:
    rng = random.Random(2)
    for _ in range(100):
        golden = [incumbent(rng) for _ in range(3)]
        verdict = judge(golden[rng.randrange(3)], golden, edit)
        assert verdict.similarity == 1.0
        assert verdict.beyond_noise is False


def test_floor_is_the_worst_pair_and_the_candidate_keeps_its_best_match() -> None:
    golden = ["aaaa", "aaab", "abbb"]
    assert noise_floor(golden, edit).floor == pytest.approx(edit("aaaa", "abbb"))
    assert best_similarity("aabb", golden, edit) == pytest.approx(max(edit("aabb", g) for g in golden))
    verdict = judge("zzzz", golden, edit)
    assert verdict.beyond_noise is True
    assert verdict.samples == 3
    json.dumps(verdict.to_dict())


def test_single_sample_floor_is_unknown_and_says_how_to_record() -> None:
    nf = noise_floor(["only one"], edit)
    assert nf.floor is None and nf.samples == 1
    assert "--llmswap-samples" in (nf.message or "")
    verdict = judge("something else", ["only one"], edit)
    assert verdict.beyond_noise is None
    assert verdict.message == UNKNOWN_FLOOR_MESSAGE
    assert beyond_noise(0.1, None) is None


def test_ties_with_the_floor_are_within_noise() -> None:
    assert beyond_noise(0.8, 0.8) is False
    assert beyond_noise(0.79, 0.8) is True


def test_a_golden_needs_a_sample() -> None:
    with pytest.raises(ValueError):
        best_similarity("x", [], edit)
