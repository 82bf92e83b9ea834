"""Suite statistics checked against scipy and hand calculations on fixed data."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats as st

from pytest_llmswap.verdict.stats import (bootstrap_mean, broken_cases, clopper_pearson, noise_excess, score_interval,
                                        wilson)


def _verdicts(table: dict[tuple[bool, bool], int]) -> tuple[list[bool], list[bool]]:
    golden, candidate = [], []
    for (g, c), count in table.items():
        golden += [g] * count
        candidate += [c] * count
    return golden, candidate


# 2x2 table: 30 both pass, 9 broken, 2 fixed, 5 both fail.
TABLE = {(True, True): 30, (True, False): 9, (False, True): 2, (False, False): 5}


def paired(table: dict[tuple[bool, bool], int]):
    golden, candidate = _verdicts(table)
    return broken_cases([int(g) for g in golden], [1] * len(golden), candidate)


def test_one_sample_flips_are_counted_and_tested_like_the_exact_mcnemar_test() -> None:
    p = paired(TABLE)
    assert (p.n, p.broken, p.fixed, p.noise, p.noise_measured) == (46, 9, 2, 0, False)
    # One-sided McNemar: P(X >= 9) for X ~ Binomial(11, 1/2), by hand, and scipy's binomial test.
    assert p.p_worse == pytest.approx(sum(math.comb(11, k) for k in range(9, 12)) / 2**11, rel=1e-12)
    assert p.p_worse == pytest.approx(st.binomtest(9, 11, 0.5, alternative="greater").pvalue, rel=1e-12)
    json.dumps(p.to_dict())


def test_fixed_cases_never_pay_for_broken_ones() -> None:
    # 9 broken of 46 is 19.6% whether the candidate fixes 2 cases or 7: only the net change moves.
    few, many = paired(TABLE), paired({(True, True): 30, (True, False): 9, (False, True): 7})
    assert few.rate.estimate == pytest.approx(9 / 46) and many.rate.estimate == pytest.approx(9 / 46)
    assert (few.rate.low, few.rate.high) == (many.rate.low, many.rate.high)
    assert few.net.estimate == pytest.approx(7 / 46) and many.net.estimate == pytest.approx(2 / 46)


def test_on_zero_one_cases_the_interval_is_exact() -> None:
    # Binary per-case values are a count of broken cases: scipy's exact (Clopper-Pearson) interval.
    p = paired(TABLE)
    ref = st.binomtest(9, 46).proportion_ci(confidence_level=0.95, method="exact")
    assert (p.rate.low, p.rate.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))
    assert p.rate.method == "clopper-pearson"


def test_noisy_cases_take_the_union_of_wilson_and_hall() -> None:
    p = broken_cases([4, 5, 3, 5] * 25, [5] * 100, [True, False, True, True] * 25)
    assert p.rate.method == "wilson+hall"
    values = np.array([0.0 - 0.2, 1.0, 0.0 - 0.3, 0.0] * 25)  # f (1 - c) - s (K - s) / (K (K - 1))
    assert p.rate.estimate == pytest.approx(values.mean())
    # ... and the interval holds Wilson's at that mean (z = 1.96, n = 100) and the Hall-corrected normal one.
    z, m, n = st.norm.ppf(0.975), 0.125, 100
    centre, half = (m + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(m * (1 - m) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert p.rate.low <= centre - half and p.rate.high >= centre + half
    assert (p.rate.low, p.rate.high) == (pytest.approx(score_interval(values).low), pytest.approx(score_interval(values).high))


@pytest.mark.parametrize(("k", "n"), [(0, 60), (3, 10), (10, 10), (9, 46), (1, 1), (300, 10_000)])
def test_clopper_pearson_equals_scipy(k: int, n: int) -> None:
    ours = clopper_pearson(k, n)
    ref = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert (ours.low, ours.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))


def test_zero_broken_cases_are_never_a_zero_width_interval() -> None:
    p = broken_cases([1] * 60, [1] * 60, [True] * 60)
    assert p.rate.low == 0.0 and p.rate.high == pytest.approx(1 - 0.025 ** (1 / 60))  # 6.0%, not 0%


def test_the_incumbents_own_noise_is_subtracted_with_k_samples() -> None:
    # Case 1: the incumbent passed 4 of 5 and the candidate failed: 0.8 broken, of which s(K-s)/(K(K-1)) = 0.2
    # is the incumbent's own breakage; case 2: 1 of 5 passed, the candidate passed: 0.8 fixed, 0.2 noise.
    p = broken_cases([4, 1, 5], [5, 5, 5], [False, True, True])
    assert (p.broken, p.fixed, p.noise) == (pytest.approx(0.8), pytest.approx(0.8), pytest.approx(0.4))
    assert p.noise_measured and p.rate.estimate == pytest.approx((0.8 - 0.4) / 3)


def test_the_noise_estimate_is_unbiased() -> None:
    # E[s (K - s) / (K (K - 1))] = p (1 - p) for s ~ Binomial(K, p): a twin's expected rate is 0.
    for k, q in ((2, 0.5), (5, 0.85), (3, 0.1)):
        expected = sum(st.binom.pmf(s, k, q) * s * (k - s) / (k * (k - 1)) for s in range(k + 1))
        assert expected == pytest.approx(q * (1 - q))


def test_the_test_looks_only_for_a_worse_candidate() -> None:
    p = paired({(True, True): 30, (True, False): 2, (False, True): 9, (False, False): 5})
    assert p.p_worse == pytest.approx(sum(math.comb(11, k) for k in range(2, 12)) / 2**11)
    assert p.p_worse > 0.99


def test_without_discordant_pairs_nothing_is_significant() -> None:
    p = broken_cases([1, 0, 1], [1, 1, 1], [True, False, True])
    assert (p.broken, p.fixed, p.p_worse) == (0, 0, 1.0)


def test_paired_inputs_must_have_one_length() -> None:
    with pytest.raises(ValueError, match="one entry per case"):
        broken_cases([1, 0], [1, 1], [True])


def test_the_exchangeability_test_equals_a_direct_poisson_binomial() -> None:
    # Mixed K: the grouped convolution equals the distribution built one case at a time.
    rng = np.random.default_rng(3)
    k = rng.integers(1, 6, 200)
    s = rng.binomial(k, 0.7)
    c = rng.random(200) < 0.6
    q = (s + c) / (k + 1)
    q = q[(q > 0) & (q < 1)]
    dist = np.zeros(len(q) + 1)
    dist[0] = 1.0
    for i, qi in enumerate(q, start=1):
        dist[1:i + 1] = dist[1:i + 1] * (1 - qi) + dist[:i] * qi
        dist[0] *= 1 - qi
    observed = int(np.sum(c[((s + c) > 0) & ((s + c) < k + 1)]))
    assert broken_cases(s, k, c).p_worse == pytest.approx(dist[:observed + 1].sum(), rel=1e-9)


def test_hall_corrects_the_normal_interval_for_skewed_values() -> None:
    # Right-skewed values (rare large ones): the interval reaches further up than down from the mean.
    values = np.r_[np.full(950, -0.1), np.full(50, 0.7)]
    ci = score_interval(values)
    assert ci.high - ci.estimate > ci.estimate - ci.low
    plain = score_interval(values - values.mean())  # the same spread, mean 0
    assert plain.high - plain.estimate == pytest.approx(ci.high - ci.estimate, rel=0.2)


def test_power_and_cases_needed_follow_the_spread() -> None:
    clean = broken_cases([1] * 100, [1] * 100, [True] * 100)
    # 0 of 100: the exact upper end is 3.6%, so 100 cases already bound it under 5%; 60 would not.
    assert clean.cases_needed(0.05) <= 100 and clean.cases_needed(0.01) > 300
    two = broken_cases([1] * 100, [1] * 100, [True] * 98 + [False] * 2)
    assert two.cases_needed(0.05) > 100 and two.cases_needed(0.02) is None  # 2% is not below 2%
    assert broken_cases([1] * 400, [1] * 400, [True] * 400).min_detectable < clean.min_detectable


def test_bootstrap_reproduces_the_unvectorised_percentile_bootstrap() -> None:
    rng = np.random.default_rng(7)
    values = rng.uniform(0.5, 1.0, size=37)
    ci = bootstrap_mean(values, resamples=500, seed=3)
    # The same draws, one resample at a time.
    draw = np.random.default_rng(3)
    means = [values[draw.integers(0, values.size, size=(1, values.size))].mean() for _ in range(500)]
    low, high = np.quantile(means, [0.025, 0.975])
    assert (ci.low, ci.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert ci.estimate == pytest.approx(values.mean())


def test_bootstrap_is_chunked_without_changing_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.linspace(0, 1, 50)
    whole = bootstrap_mean(values, seed=1)
    monkeypatch.setattr("pytest_llmswap.verdict.stats._BOOTSTRAP_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
    assert bootstrap_mean(values, seed=1) == whole


def test_bootstrap_agrees_with_scipy_and_covers_the_mean() -> None:
    values = np.random.default_rng(11).normal(0.8, 0.1, size=200)
    ours = bootstrap_mean(values, resamples=2000, seed=0)
    ref = st.bootstrap((values,), np.mean, n_resamples=2000, method="percentile", random_state=0,
                       confidence_level=0.95).confidence_interval
    # Different random draws: equal up to Monte Carlo error (~0.001 here), both about mean +- 1.96 se.
    assert ours.low == pytest.approx(ref.low, abs=0.004)
    assert ours.high == pytest.approx(ref.high, abs=0.004)
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert ours.high - ours.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert ours.low < values.mean() < ours.high
    json.dumps(asdict(ours))


def test_bootstrap_is_seeded() -> None:
    values = [0.1, 0.9, 0.5, 0.7, 0.3]
    assert bootstrap_mean(values, seed=5) == bootstrap_mean(values, seed=5)
    assert bootstrap_mean(values, seed=5) != bootstrap_mean(values, seed=6)


def test_bootstrap_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (87, 120), (1, 1)])
def test_wilson_equals_scipy(k: int, n: int) -> None:
    ours = wilson(k, n)
    ref = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (ours.low, ours.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))
    assert ours.estimate == k / n


def test_wilson_by_hand() -> None:
    # 8/10 at 95%: z = 1.959964, centre = (0.8 + z^2/20) / (1 + z^2/10), half-width as in the formula.
    z = 1.959963984540054
    centre = (0.8 + z**2 / 20) / (1 + z**2 / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z**2 / 400) / (1 + z**2 / 10)
    ci = wilson(8, 10)
    assert (ci.low, ci.high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    with pytest.raises(ValueError):
        wilson(3, 0)


def test_noise_excess_with_one_k_is_a_binomial_test() -> None:
    flags = [True] * 7 + [False] * 23
    result = noise_excess(flags, [3] * 30)
    assert result.p_value == pytest.approx(st.binomtest(7, 30, 0.25, alternative="greater").pvalue, rel=1e-9)
    assert (result.cases, result.beyond, result.expected_at_most) == (30, 7, pytest.approx(7.5))


def test_noise_excess_mixes_k_and_skips_unknown_floors() -> None:
    # Cases with K = 2 (p = 1/3) and K = 4 (p = 1/5), one flagged each; K = 1 and None are skipped.
    result = noise_excess([True, True, None, False], [2, 4, 1, 3])
    p_none = (2 / 3) * (4 / 5) * (3 / 4)
    p_one = (1 / 3) * (4 / 5) * (3 / 4) + (2 / 3) * (1 / 5) * (3 / 4) + (2 / 3) * (4 / 5) * (1 / 4)
    assert result.cases == 3 and result.beyond == 2
    assert result.p_value == pytest.approx(1 - p_none - p_one)
    assert noise_excess([], []).p_value == 1.0
