"""``edit`` similarity on long outputs: exact where the band reaches, a lower bound close to it elsewhere.

Speed is measured in benchmarks/bench_edit.py (figures in benchmarks/README.md), not here.
"""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import Levenshtein

from pytest_llmswap.drift import text
from pytest_llmswap.drift.text import edit_similarity

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]


def prose(rng: random.Random, chars: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(chars // 4))[:chars]


def spread_edits(rng: random.Random, base: str, share: float) -> str:
    """``base`` with ``share`` of its characters substituted, deleted or followed by an insertion, anywhere."""
    out = []
    for ch in base:
        roll = rng.random()
        if roll < share / 3:
            out.append(rng.choice("xyzq"))
        elif roll < 2 * share / 3:
            continue
        elif roll < share:
            out.append(ch + rng.choice("xyzq"))
        else:
            out.append(ch)
    return "".join(out)


def exact(a: str, b: str) -> float:
    return float(Levenshtein.normalized_similarity(a, b))


@pytest.mark.parametrize("share", [0.001, 0.05, 0.3])
def test_long_texts_within_the_band_score_exactly(share):
    rng = random.Random(7)
    a = prose(rng, 60_000)
    b = spread_edits(rng, a, share)
    assert edit_similarity(a, b) == pytest.approx(exact(a, b), abs=1e-12)


@pytest.mark.parametrize("share", [0.02, 0.1, 0.4])
def test_beyond_the_band_chunks_give_a_lower_bound_close_to_the_exact_score(monkeypatch, share):
    monkeypatch.setattr(text, "_CELLS", 60_000 * 10)  # a band of 10 edits: every pair here is past it
    rng = random.Random(11)
    a = prose(rng, 60_000)
    b = spread_edits(rng, a, share)
    true = exact(a, b)
    assert true - 0.01 <= edit_similarity(a, b) <= true


def test_text_moved_beyond_the_band_scores_lower_never_higher(monkeypatch):
    monkeypatch.setattr(text, "_CELLS", 60_000 * 10)
    rng = random.Random(3)
    a = prose(rng, 60_000)
    b = prose(rng, 5_000) + a  # a long preamble shifts every chunk
    assert edit_similarity(a, b) <= exact(a, b)
    assert edit_similarity(a, a) == 1.0 and edit_similarity(a, "") == 0.0


def test_short_texts_are_unchanged():
    assert edit_similarity("the cat  sat", "the  cat sat ") == 1.0
    assert edit_similarity("kitten", "sitting") == pytest.approx(exact("kitten", "sitting"))
