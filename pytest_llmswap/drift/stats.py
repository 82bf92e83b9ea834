"""Suite-level statistics on paired verdicts and drift scores: flips, exact McNemar, bootstrap, Wilson.

Every result is a frozen dataclass of plain ``int``/``float`` values, so ``dataclasses.asdict`` of it
is JSON serialisable. Inputs are per-case and paired: position ``i`` of ``golden_passed`` and of
``candidate_passed`` is the same case.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Upper bound on resamples x values drawn at once, so a large suite never allocates gigabytes.
_BOOTSTRAP_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_mean(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> Interval:
    """Percentile bootstrap interval on the mean of ``values`` (seeded, so reports are reproducible).

    Booleans are allowed: the mean of 0/1 flags is a rate. Raises ``ValueError`` on an empty input.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("bootstrap needs a non-empty flat sequence of values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = x.size
    if np.all(x == x[0]):  # no spread: every resample has the same mean
        return Interval(float(x[0]), float(x[0]), float(x[0]), confidence, "bootstrap-percentile", int(n))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        means[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high), confidence, "bootstrap-percentile", int(n))


def wilson(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a pass rate ``successes / n`` (well behaved at 0% and 100%)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), confidence, "wilson", n)


def clopper_pearson(events: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Exact (Clopper-Pearson) two-sided interval for a rate ``events / n``.

    With zero events the upper bound is ``1 - ((1 - confidence) / 2) ** (1 / n)``, never 0: a small suite
    with no regression cannot claim that regressions are impossible. The bounds are where the binomial tails
    equal ``(1 - confidence) / 2``, found by bisection to double precision (scipy would add a second of import
    to every candidate run for the same numbers; tests/test_stats.py checks them against scipy).
    """
    if n <= 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n and n > 0, got {events}/{n}")
    tail = (1 - confidence) / 2
    i = np.arange(n + 1)
    log_choose = np.concatenate(([0.0], np.cumsum(np.log((n - i[1:] + 1) / i[1:]))))

    def at_most(k: int, p: float) -> float:  # P(X <= k) for X ~ Binomial(n, p), 0 < p < 1
        logs = log_choose[: k + 1] + i[: k + 1] * math.log(p) + (n - i[: k + 1]) * math.log1p(-p)
        top = logs.max()
        return float(np.exp(logs - top).sum() * math.exp(top))

    def solve(target: Callable[[float], float]) -> float:  # the p in (0, 1) where a decreasing target is 0
        low, high = 0.0, 1.0
        for _ in range(200):
            mid = (low + high) / 2
            if mid in (low, high):
                break
            low, high = (mid, high) if target(mid) > 0 else (low, mid)
        return (low + high) / 2

    # Both targets fall as p rises: P(X >= events) rises, P(X <= events) falls.
    low = 0.0 if events == 0 else solve(lambda p: tail - (1 - at_most(events - 1, p)))
    high = 1.0 if events == n else solve(lambda p: at_most(events, p) - tail)
    return Interval(events / n, low, high, confidence, "clopper-pearson", n)


@dataclass(frozen=True)
class PairedVerdicts:
    """The candidate's checks against the incumbent's, with the incumbent's own noise as the yardstick.

    Per case the incumbent passed ``s`` of its ``K`` golden samples (pass fraction ``f = s / K``) and the
    candidate passed (``c = 1``) or failed (``c = 0``). ``regressions = sum((1 - c) * f)``: each failure of
    the candidate weighs the chance that the incumbent would have passed that case; ``improvements =
    sum(c * (1 - f))``. With K = 1 these are the usual flip counts. ``net = regressions - improvements``
    is the candidate's excess of failures over the incumbent's, whose expectation is 0 for a candidate
    that answers like the incumbent.

    ``p_worse`` is an exact exchangeability test: under "the candidate is one more sample of the
    incumbent", the candidate is equally likely to be any of the K + 1 answers of a case, so given the
    case's total passes ``t = s + c`` the candidate passes with probability ``t / (K + 1)``. The number of
    candidate passes then follows a Poisson-binomial law; ``p_worse`` is its lower tail at the observed
    count (with K = 1 this is the one-sided exact McNemar test). ``rate`` bounds ``net / n`` at
    ``confidence``: the exact Clopper-Pearson interval on ``max(0, round(net))`` events, widened on each side
    by the normal margin of the incumbent's noise (the null variance over the cases it both passed and
    failed; none when K = 1), so zero events never give [0%, 0%].
    """

    n: int
    regressions: float
    improvements: float
    net: float
    p_worse: float
    rate: Interval

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_verdicts(golden_passes: Sequence[int], golden_samples: Sequence[int], candidate_passed: Sequence[bool],
                    *, confidence: float = 0.95) -> PairedVerdicts:
    """Flips, the exchangeability test and the net regression rate interval (see :class:`PairedVerdicts`)."""
    s = np.asarray(golden_passes, dtype=float)
    k = np.asarray(golden_samples, dtype=float)
    c = np.asarray(candidate_passed, dtype=float)
    if not s.shape == k.shape == c.shape or s.ndim != 1:
        raise ValueError("golden_passes, golden_samples and candidate_passed need one entry per case")
    if np.any(k < 1) or np.any(s < 0) or np.any(s > k):
        raise ValueError("every case needs K >= 1 golden samples and 0 <= passes <= K")
    n = int(c.size)
    if n == 0:
        return PairedVerdicts(0, 0.0, 0.0, 0.0, 1.0, Interval(0.0, 0.0, 1.0, confidence, "none", 0))
    f = s / k
    regressions, improvements = float(np.sum((1 - c) * f)), float(np.sum(c * (1 - f)))
    net = regressions - improvements
    p = (s + c) / (k + 1)  # each case's null probability that the candidate is a passing answer
    uncertain = (p > 0) & (p < 1)  # cases where all K + 1 answers agree cannot tell the models apart
    tail = _poisson_binomial_pmf(p[uncertain])[: int(np.sum(c[uncertain])) + 1].sum()
    # The incumbent's own noise: only cases it both passed and failed (0 < f < 1) make the net count uncertain
    # beyond the binomial count of flips, by the null variance of d_i = c_i (1 + 1/K) - t_i / K.
    noisy = (f > 0) & (f < 1)
    se = float(np.sqrt(np.sum(((1 + 1 / k) ** 2 * p * (1 - p))[noisy])))
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    exact = clopper_pearson(min(n, max(0, round(net))), n, confidence=confidence)
    low = max(0.0, exact.low - z * se / n)
    high = min(1.0, exact.high + z * se / n)
    rate = Interval(max(0.0, net / n), low, high, confidence, "clopper-pearson+noise", n)
    return PairedVerdicts(n, regressions, improvements, net, float(min(1.0, tail)), rate)


def _poisson_binomial_pmf(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """The distribution of a sum of independent Bernoulli(probs), by convolution one case at a time."""
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for i, q in enumerate(probs, start=1):
        dist[1:i + 1] = dist[1:i + 1] * (1 - q) + dist[:i] * q
        dist[0] *= 1 - q
    return dist


@dataclass(frozen=True)
class NoiseExcess:
    """Are more cases beyond the noise floor than a model identical to the incumbent could explain?

    For a candidate that samples like the incumbent, the K golden samples and the candidate answer are
    exchangeable, so a case is beyond noise (the candidate's best match is below the golden's worst pair,
    which makes the candidate the one answer of the K+1 furthest from the rest) with probability at most
    1/(K+1). ``p_value`` is P(X >= beyond) for X the sum of independent Bernoulli(1/(K_i+1)) over the
    cases with a known floor: small means the drift is real, not the incumbent's own noise. The bound is
    conservative (an identical model is flagged far less often than 1/(K+1) once K >= 3).
    """

    cases: int  # cases with a known floor (K >= 2)
    beyond: int
    expected_at_most: float  # sum of 1/(K_i+1): the most flags an identical model produces on average
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_excess(beyond_noise: Sequence[bool | None], samples: Sequence[int]) -> NoiseExcess:
    """One-sided test of the per-case beyond-noise flags against the exchangeability bound 1/(K+1).

    ``beyond_noise[i]`` is a case's flag (``None`` when its floor is unknown: skipped) and ``samples[i]``
    its number of golden samples K.
    """
    if len(beyond_noise) != len(samples):
        raise ValueError("beyond_noise and samples must have one entry per case")
    probs, flagged = [], 0
    for flag, k in zip(beyond_noise, samples):
        if flag is None or k < 2:
            continue
        probs.append(1.0 / (k + 1))
        flagged += bool(flag)
    dist = _poisson_binomial_pmf(probs)
    p_value = float(min(1.0, dist[flagged:].sum()))
    return NoiseExcess(len(probs), flagged, float(sum(probs)), p_value)
