"""Noise floor: how far the incumbent is from itself, so a candidate is only blamed for drift beyond it.

With ``K`` recorded golden samples of a case, "the golden" is the set of samples, not one of them:

* the candidate's score is its similarity to the *closest* golden sample (``best_similarity``);
* the floor is the *worst* pairwise similarity among the golden samples (``noise_floor``);
* the case has drifted beyond noise only when the candidate's score is strictly below the floor.

So a candidate that samples exactly like the incumbent lands inside the incumbent's own spread: it is
compared with K samples and keeps its best match, while the floor keeps the worst pair. Every function
works in similarity space (higher = closer, e.g. semantic or edit similarity); for a distance ``d`` in
[0, 1] pass ``lambda a, b: 1 - d(a, b)``.

A symmetric similarity is assumed. For a candidate that samples exactly like the incumbent, the K
golden samples and the candidate answer are exchangeable, and a flagged case makes the candidate the one
answer of the K+1 furthest from the rest: so an identical model is flagged with probability at most
1/(K+1) per case, whatever the texts (``stats.noise_excess`` turns that bound into a suite-level test).
In practice the rate is far lower once K >= 3: on the synthetic sampler of tests/test_noise.py about
1 in 3 at K=2 (the bound is reached), 10% at K=3 and 2% at K=5. Record with K >= 3, better 5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

Similarity = Callable[[str, str], float]

UNKNOWN_FLOOR_MESSAGE = (
    "noise floor unknown: the golden has one sample; record K >= 3 samples per case with "
    "`--llmswap-samples K` (e.g. `pytest --llmswap-record=all --llmswap-samples 3`)"
)


@dataclass(frozen=True)
class NoiseFloor:
    """The incumbent-vs-itself spread of one case: the worst pairwise similarity of its K samples."""

    floor: float | None  # None when K < 2
    samples: int
    message: str | None = None  # why the floor is unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NoiseVerdict:
    """A candidate answer judged against the golden samples of its case and their noise floor."""

    similarity: float  # to the closest golden sample
    floor: float | None
    beyond_noise: bool | None  # None when the floor is unknown
    samples: int
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_floor(samples: Sequence[str], similarity: Similarity) -> NoiseFloor:
    """The minimum pairwise similarity among a case's golden samples (unknown with fewer than two)."""
    if len(samples) < 2:
        return NoiseFloor(None, len(samples), UNKNOWN_FLOOR_MESSAGE)
    return NoiseFloor(min(float(similarity(a, b)) for a, b in combinations(samples, 2)), len(samples))


def best_similarity(candidate: str, samples: Sequence[str], similarity: Similarity) -> float:
    """The candidate's similarity to the closest golden sample."""
    if not samples:
        raise ValueError("a golden needs at least one sample")
    return max(float(similarity(candidate, s)) for s in samples)


def beyond_noise(candidate_similarity: float, floor: float | None) -> bool | None:
    """True when the candidate is further from the golden than the incumbent is from itself.

    ``None`` when the floor is unknown (K = 1): the case can then only be judged by its tolerances.
    """
    if floor is None:
        return None
    return candidate_similarity < floor


def judge(candidate: str, samples: Sequence[str], similarity: Similarity) -> NoiseVerdict:
    """Score one candidate answer against a case's golden samples and decide if it drifted beyond noise."""
    nf = noise_floor(samples, similarity)
    score = best_similarity(candidate, samples, similarity)
    return NoiseVerdict(score, nf.floor, beyond_noise(score, nf.floor), nf.samples, nf.message)
