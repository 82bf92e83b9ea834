"""Suite-level statistics on paired verdicts and drift scores: flips, exact McNemar, bootstrap, Wilson.

Every result is a frozen dataclass of plain ``int``/``float`` values, so ``dataclasses.asdict`` of it
is JSON serialisable. Inputs are per-case and paired: position ``i`` of ``golden_passed`` and of
``candidate_passed`` is the same case.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from collections.abc import Callable, Sequence
from functools import lru_cache
from dataclasses import asdict, dataclass, replace
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

    With zero events the upper bound is ``1 - ((1 - confidence) / 2) ** (1 / n)``, never 0: a small suite with no
    broken case cannot claim that breakage is impossible. The bounds are where the binomial tails equal
    ``(1 - confidence) / 2``, found by bisection to double precision (scipy would add a tenth of a second of import
    to every candidate run for the same numbers; tests/test_stats.py checks them against scipy), and remembered:
    the verdict's simulation asks for the same few counts thousands of times.
    """
    if n <= 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n and n > 0, got {events}/{n}")
    low, high = _exact_bounds(events, n, confidence)
    return Interval(events / n, low, high, confidence, "clopper-pearson", n)


@lru_cache(maxsize=65536)
def _exact_bounds(events: int, n: int, confidence: float) -> tuple[float, float]:
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
    return low, high


def score_interval(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95) -> Interval:
    """Interval on the mean of per-case values in [-1, 1] whose variance comes from the paired data.

    On 0/1 values (a count of broken cases) it is the exact Clopper-Pearson interval. Otherwise it is the union of
    the Wilson score interval at the observed mean (the binomial variance, so rare events never look certain) and
    Hall's (1992) skewness-corrected normal interval with the sample variance and skewness of the values (the
    incumbent's noise spreads them more than a binomial). tests/test_calibration.py checks its coverage by
    simulation.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(0.0, 0.0, 1.0, confidence, "none", 0)
    return _interval(x, confidence)[0]


def _interval(x: np.ndarray, confidence: float) -> tuple[Interval, float]:
    """:func:`score_interval` of a non-empty ``x``, and the variance of ``x`` (what power and sizes need)."""
    mean, var, skew = _moments(x)
    binary = bool(np.all((x == 0) | (x == 1)))
    low, high = _bounds(mean, var, skew, int(x.size), _z(confidence), binary)
    return Interval(mean, low, high, confidence, "clopper-pearson" if binary else "wilson+hall", int(x.size)), var


def _bounds(mean: float, var: float, skew: float, n: int, z: float, binary: bool) -> tuple[float, float]:
    """The two ends of :func:`score_interval` for a mean, a variance, a skewness and a number of cases.

    0/1 values are a binomial count: the exact Clopper-Pearson interval, which never covers less than it says
    (Wilson's dips to 93.9% at 50 cases, simulated). Otherwise the union of Wilson's and Hall's.
    """
    if binary:
        exact = clopper_pearson(min(n, max(0, round(mean * n))), n, confidence=2 * NormalDist().cdf(z) - 1)
        return exact.low, exact.high
    sd = math.sqrt(var)
    # Hall's transform is of (mean - mu) / sd; mu = mean - sd * u, so each end takes the other side's root.
    low, high = mean - sd * _hall(z / math.sqrt(n), skew, n), mean - sd * _hall(-z / math.sqrt(n), skew, n)
    # Wilson's quadratic (1 + z2/n) mu^2 - (2 mean + z2/n) mu + mean^2 <= 0, solved for the observed mean.
    a, b = 1 + z * z / n, 2 * mean + z * z / n
    disc = b * b - 4 * a * mean * mean
    if disc >= 0:
        root = math.sqrt(disc)
        low, high = min(low, (b - root) / (2 * a)), max(high, (b + root) / (2 * a))
    return (low, high) if low <= high else (mean, mean)


def _hall(y: float, skew: float, n: int) -> float:
    """Where the mean's standardised end lies after Hall's (1992) skewness correction of the t statistic.

    Rare broken cases make the per-case values right-skewed, and the plain normal interval then misses high
    rates more often than it says (3.3% instead of 2.5% at 1,000 cases, measured). Hall's cubic transform
    ``g(u) = u + skew u^2 / 3 + skew^2 u^3 / 27 + skew / (6 n)`` is monotone, so its inverse is exact.
    """
    if abs(skew) < 1e-9:
        return y
    inner = 1 + skew * (y - skew / (6 * n))
    return 3 / skew * (math.copysign(abs(inner) ** (1 / 3), inner) - 1)


@dataclass(frozen=True)
class BrokenCases:
    """The candidate's broken cases against the incumbent's, with the incumbent's own noise subtracted.

    Per case the incumbent passed ``s`` of its ``K`` golden samples (pass fraction ``f = s / K``) and the candidate
    passed (``c = 1``) or failed (``c = 0``). A case is *broken* when the incumbent passes and the candidate fails:
    ``broken = sum(f * (1 - c))``, each failure weighed by the chance that the incumbent would have passed. With
    K >= 2 samples the incumbent's own breakage is measured too: ``noise = sum(s (K - s) / (K (K - 1)))``, the
    unbiased estimate of how often one of its answers passes where another fails. ``rate`` is the broken-case rate
    beyond that noise, ``(broken - noise) / n``, whose expectation is 0 for a candidate that answers like the
    incumbent; its interval is :func:`score_interval` over the per-case values (never below what zero broken
    cases in ``n`` can show): exact Clopper-Pearson when they are 0/1, else Wilson's united with Hall's. With K = 1 the noise is unknown (``noise_measured`` False) and the rate is the gross
    one. Fixed cases (``fixed = sum(c * (1 - f))``) are a gain and never subtracted; ``net`` is ``(broken -
    fixed) / n`` with the same kind of interval, shown beside it.

    ``p_worse`` is an exact exchangeability test: under "the candidate is one more sample of the incumbent", the
    candidate is equally likely to be any of the K + 1 answers of a case, so given the case's total passes ``t =
    s + c`` it passes with probability ``t / (K + 1)``; the number of candidate passes then follows a
    Poisson-binomial law and ``p_worse`` is its lower tail at the observed count (with K = 1, the one-sided exact
    McNemar test). ``min_detectable`` is the smallest broken-case rate this suite finds (lower bound above 0) with
    80% power at the spread observed.
    """

    n: int
    broken: float
    fixed: float
    noise: float
    noise_measured: bool
    p_worse: float
    rate: Interval
    net: Interval
    min_detectable: float
    spread: float  # variance of the per-case values behind ``rate``

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cases_needed(self, maximum: float) -> int | None:
        """About how many cases, at the rate and spread observed, would bound the rate at or below ``maximum``;
        None when the observed rate is not below it (no number of cases would)."""
        mean = max(0.0, self.rate.estimate)
        if mean >= maximum or self.n == 0:
            return None
        z = _z(self.rate.confidence)

        def bounded(n: int) -> bool:
            # "About": the score bounds without the exact or skewness refinements, cheap at any n.
            return max(_bounds(mean, self.spread, 0.0, n, z, False)[1], _zero_events_high(n, z)) <= maximum

        high = max(self.n, 1)
        while not bounded(high):
            high *= 2
        low = 0
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if bounded(mid) else (mid, high)
        return high


def broken_cases(golden_passes: Sequence[int], golden_samples: Sequence[int], candidate_passed: Sequence[bool],
                 *, confidence: float = 0.95, power: float = 0.8) -> BrokenCases:
    """Broken and fixed cases, the exchangeability test and the broken-case rate (see :class:`BrokenCases`)."""
    s = np.asarray(golden_passes, dtype=float)
    k = np.asarray(golden_samples, dtype=float)
    c = np.asarray(candidate_passed, dtype=float)
    if not s.shape == k.shape == c.shape or s.ndim != 1:
        raise ValueError("golden_passes, golden_samples and candidate_passed need one entry per case")
    if np.any(k < 1) or np.any(s < 0) or np.any(s > k):
        raise ValueError("every case needs K >= 1 golden samples and 0 <= passes <= K")
    n = int(c.size)
    if n == 0:
        empty = Interval(0.0, 0.0, 1.0, confidence, "none", 0)
        return BrokenCases(0, 0.0, 0.0, 0.0, False, 1.0, empty, empty, 1.0, 0.0)
    f = s / k
    lost = f * (1 - c)
    noise = np.where(k > 1, s * (k - s) / np.maximum(k * (k - 1), 1), 0.0)
    z = _z(confidence)
    rate, spread = _interval(lost - noise, confidence)
    net, _ = _interval(f - c, confidence)
    return BrokenCases(n, float(lost.sum()), float((c * (1 - f)).sum()), float(noise.sum()), bool(np.all(k > 1)),
                       _p_worse(s, k, c), _clipped(rate, 0.0), _clipped(net, -1.0),
                       _min_detectable(spread, n, z, NormalDist().inv_cdf(power)), spread)


def _clipped(interval: Interval, lowest: float) -> Interval:
    """``interval`` within ``[lowest, 1]``, its upper end never under what zero broken cases in ``n`` can show (a
    smaller rate is not resolved by ``n`` cases)."""
    floor = _zero_events_high(interval.n, _z(interval.confidence))
    return replace(interval, estimate=min(1.0, max(lowest, interval.estimate)), low=max(lowest, interval.low),
                   high=min(1.0, max(interval.high, floor)))


def _moments(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, variance and skewness of ``x`` in one pass."""
    mean = float(x.mean())
    dev = x - mean
    sq = dev * dev
    var = float(sq.mean())
    return mean, var, float((sq * dev).mean() / var ** 1.5) if var > 1e-18 else 0.0


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _zero_events_high(n: int, z: float) -> float:
    """The exact upper end for zero events in ``n``: the finest rate ``n`` cases resolve."""
    return 1 - (1 - NormalDist().cdf(z)) ** (1 / n)


def _min_detectable(spread: float, n: int, z: float, z_power: float) -> float:
    """The smallest rate whose lower bound clears 0 with the given power: ``theta >= (z + z_power) sd / sqrt(n)``
    with ``sd**2 = max(spread, theta (1 - theta))``, so the larger of the normal and the binomial solutions."""
    c = z + z_power
    return min(1.0, max(c * math.sqrt(spread / n), c * c / (n + c * c)))


def _p_worse(s: np.ndarray, k: np.ndarray, c: np.ndarray) -> float:
    """Lower tail of the candidate's passes under exchangeability with the incumbent's K samples."""
    p = (s + c) / (k + 1)  # each case's null probability that the candidate is a passing answer
    uncertain = (p > 0) & (p < 1)  # cases where all K + 1 answers agree cannot tell the models apart
    tail = _poisson_binomial_pmf(p[uncertain])[: int(np.sum(c[uncertain])) + 1].sum()
    return float(min(1.0, tail))


def _poisson_binomial_pmf(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """The distribution of a sum of independent Bernoulli(probs): a convolution of one binomial per distinct
    probability (a suite has few: ``t / (K + 1)``), so a 1,000-case suite takes a few convolutions, not 1,000."""
    dist = np.ones(1)
    values, counts = np.unique(np.asarray(probs, dtype=float), return_counts=True)
    for q, m in zip(values, counts):
        dist = np.convolve(dist, _binomial_pmf(int(m), float(q)))
    return dist


def _binomial_pmf(n: int, q: float) -> np.ndarray:
    i = np.arange(n + 1)
    if q <= 0 or q >= 1:
        return (i == (n if q >= 1 else 0)).astype(float)
    log_choose = np.concatenate(([0.0], np.cumsum(np.log((n - i[1:] + 1) / i[1:]))))
    logs = log_choose + i * math.log(q) + (n - i) * math.log1p(-q)
    return np.exp(logs)


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
