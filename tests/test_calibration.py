"""The verdict is calibrated by simulation (issue 16): 1,000 suites per scenario through the plugin's own evidence
and verdict functions, no pytest session. docs/cost.md has the full table (benchmarks/bench_calibration.py)."""

from __future__ import annotations

import pytest

from calibration import SETTINGS, Scenario, candidate_population, grid, simulate
from pytest_llmswap.verdict.aggregate import evidence
from pytest_llmswap.verdict.cost import RULE_DROP_IN, verdict


GROUPS = [(k, noise, n) for k in (1, 5) for noise in (0.0, 0.15) for n in (50, 400, 1000)]


def test_the_grid_holds_every_scenario_the_issue_names() -> None:
    # K = 1 with a noisy incumbent has no candidate at 5% (its twin already breaks 12.75% of cases by noise), nor
    # has a noisy incumbent passing 30% one that breaks and fixes twice as much (the fixes outweigh it).
    found = [s for s in grid() if candidate_population(s) is not None]
    assert len(found) == 87 and sum(s.candidate == "twin" for s in found) == 36
    labels = {(s.k, s.noise, s.candidate) for s in found}
    assert {(5, 0.15, "broken and fixed"), (1, 0.0, "broken"), (1, 0.15, "twin")} <= labels


@pytest.mark.parametrize(("k", "noise", "n"), GROUPS,
                         ids=[f"K{k}-{'noisy' if noise else 'deterministic'}-n{n}" for k, noise, n in GROUPS])
def test_the_verdict_is_calibrated(k: int, noise: float, n: int) -> None:
    """Coverage of the 95% interval >= 94%; a candidate at the maximum is a drop-in in <= 5% of suites; a twin is
    flagged ("migrate with rework" or "not recommended") in <= 5%; a deterministic twin of 400+ cases is a drop-in."""
    outcomes = [o for s in grid() if (s.k, s.noise, s.n) == (k, noise, n) for o in [simulate(s)] if o is not None]
    assert outcomes
    low = [(o.scenario.label, o.coverage) for o in outcomes if o.coverage < 0.94]
    assert not low, low
    high = [(o.scenario.label, o.drop_in) for o in outcomes if o.scenario.candidate != "twin" and o.drop_in > 0.05]
    assert not high, high
    twins = [o for o in outcomes if o.scenario.candidate == "twin"]
    flagged = [(o.scenario.label, o.flagged) for o in twins if o.flagged > 0.05]
    assert not flagged, flagged
    if not noise and n >= 400:
        assert all(o.drop_in == 1.0 for o in twins)


def test_a_candidate_breaking_three_times_the_maximum_is_found() -> None:
    # Power: at 15% broken on a deterministic incumbent, 400 cases flag it nearly always.
    for k in (1, 5):
        outcome = simulate(Scenario(k, 0.8, 0.0, 400, "broken", 0.15), suites=300)
        assert outcome is not None and outcome.flagged >= 0.99 and outcome.drop_in == 0


def test_an_identical_deterministic_candidate_on_eighty_cases_is_a_drop_in() -> None:
    found = evidence([1] * 80, [1] * 80, [True] * 80, SETTINGS)
    assert verdict(found, SETTINGS).rule == RULE_DROP_IN
    # The exact upper end for 0 of 80 (4.5%); 72 clean cases are the fewest that bound it under 5%.
    assert found.regression_rate_ci == (0.0, pytest.approx(1 - 0.025 ** (1 / 80), rel=1e-12))
    assert evidence([1] * 72, [1] * 72, [True] * 72, SETTINGS).regression_rate_ci[1] < 0.05
    assert evidence([1] * 71, [1] * 71, [True] * 71, SETTINGS).regression_rate_ci[1] > 0.05
