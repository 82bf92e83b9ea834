"""Suite statistics checked against scipy and hand calculations on fixed data."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats as st

from pytest_llmswap.drift.stats import bootstrap_mean, clopper_pearson, noise_excess, paired_verdicts, wilson


def _verdicts(table: dict[tuple[bool, bool], int]) -> tuple[list[bool], list[bool]]:
    golden, candidate = [], []
    for (g, c), count in table.items():
        golden += [g] * count
        candidate += [c] * count
    return golden, candidate


# 2x2 table: 30 both pass, 9 regressions, 2 improvements, 5 both fail.
TABLE = {(True, True): 30, (True, False): 9, (False, True): 2, (False, False): 5}


def paired(table: dict[tuple[bool, bool], int]):
    golden, candidate = _verdicts(table)
    return paired_verdicts([int(g) for g in golden], [1] * len(golden), candidate)


def test_one_sample_flips_are_counted_and_tested_like_the_exact_mcnemar_test() -> None:
    p = paired(TABLE)
    assert (p.n, p.regressions, p.improvements, p.net) == (46, 9, 2, 7)
    # One-sided McNemar: P(X >= 9) for X ~ Binomial(11, 1/2), by hand, and scipy's binomial test.
    assert p.p_worse == pytest.approx(sum(math.comb(11, k) for k in range(9, 12)) / 2**11, rel=1e-12)
    assert p.p_worse == pytest.approx(67 / 2048)
    assert p.p_worse == pytest.approx(st.binomtest(9, 11, 0.5, alternative="greater").pvalue, rel=1e-12)
    json.dumps(p.to_dict())


def test_the_test_looks_only_for_a_worse_candidate() -> None:
    # The mirror table: the candidate improved; "is it worse?" must not be significant.
    p = paired({(True, True): 30, (True, False): 2, (False, True): 9, (False, False): 5})
    assert p.p_worse == pytest.approx(sum(math.comb(11, k) for k in range(2, 12)) / 2**11)
    assert p.p_worse > 0.99 and p.rate.estimate == 0.0


def test_without_discordant_pairs_nothing_is_significant() -> None:
    p = paired_verdicts([1, 0, 1], [1, 1, 1], [True, False, True])
    assert (p.regressions, p.improvements, p.p_worse) == (0, 0, 1.0)


def test_paired_inputs_must_have_one_length() -> None:
    with pytest.raises(ValueError, match="one entry per case"):
        paired_verdicts([1, 0], [1, 1], [True])


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
    monkeypatch.setattr("pytest_llmswap.drift.stats._BOOTSTRAP_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
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


@pytest.mark.parametrize(("k", "n"), [(0, 60), (3, 10), (10, 10), (9, 46), (1, 1), (300, 10_000)])
def test_clopper_pearson_equals_scipy(k: int, n: int) -> None:
    ours = clopper_pearson(k, n)
    ref = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert (ours.low, ours.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))


def test_zero_events_never_give_a_zero_width_interval() -> None:
    ci = clopper_pearson(0, 60)
    assert ci.low == 0.0 and ci.high == pytest.approx(1 - 0.025 ** (1 / 60))  # 5.96%, not 0%


def test_paired_verdicts_weigh_flips_by_the_incumbent_pass_fraction() -> None:
    # case 1: the incumbent passed 4 of 5, the candidate failed -> 0.8 of a regression;
    # case 2: the incumbent passed 1 of 5, the candidate passed -> 0.8 of an improvement.
    paired = paired_verdicts([4, 1, 5], [5, 5, 5], [False, True, True])
    assert paired.regressions == pytest.approx(0.8) and paired.improvements == pytest.approx(0.8)
    assert paired.net == pytest.approx(0.0) and paired.p_worse > 0.5


def test_a_twin_of_a_noisy_incumbent_is_not_worse_but_a_worse_model_is() -> None:
    """Candidates drawn from the incumbent's own distribution get p_worse < alpha about alpha of the time."""
    rng = np.random.default_rng(7)
    k, n = 5, 300
    p = rng.uniform(0.4, 1.0, n)
    twin_flags, worse_flags = [], []
    for _ in range(200):
        passes = rng.binomial(k, p)
        twin_flags.append(paired_verdicts(passes, [k] * n, rng.random(n) < p).p_worse < 0.05)
        worse_flags.append(paired_verdicts(passes, [k] * n, rng.random(n) < p - 0.1).p_worse < 0.05)
    assert np.mean(twin_flags) <= 0.08  # the test's size, with sampling slack
    assert np.mean(worse_flags) >= 0.9  # a 10-point drop in pass rate is found


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
