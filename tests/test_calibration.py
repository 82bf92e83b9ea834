"""The verdict is calibrated by simulation (issue 16): 1,000 suites per scenario through the plugin's own evidence
and verdict functions, no pytest session. docs/cost.md has the full table (benchmarks/bench_calibration.py)."""

from __future__ import annotations

from statistics import NormalDist

import pytest

from calibration import SETTINGS, Scenario, grid, simulate
from pytest_llmswap.aggregate import evidence
from pytest_llmswap.cost import RULE_DROP_IN, verdict


@pytest.fixture(scope="module")
def outcomes():
    found = [simulate(s) for s in grid()]
    return [o for o in found if o is not None]


def test_the_grid_holds_every_scenario_the_issue_names(outcomes) -> None:
    # K = 1 with a noisy incumbent has no candidate at 5% (its twin already breaks 12.75% of cases by noise), nor
    # has a noisy incumbent passing 30% one that breaks and fixes twice as much (the fixes outweigh it).
    assert len(outcomes) == 87
    labels = {(o.scenario.k, o.scenario.noise, o.scenario.candidate) for o in outcomes}
    assert {(5, 0.15, "broken and fixed"), (1, 0.0, "broken"), (1, 0.15, "twin")} <= labels


def test_the_interval_covers_the_true_broken_case_rate(outcomes) -> None:
    low = [(o.scenario.label, o.coverage) for o in outcomes if o.coverage < 0.94]
    assert not low, low


def test_a_candidate_at_the_maximum_is_a_drop_in_in_at_most_five_percent_of_suites(outcomes) -> None:
    high = [(o.scenario.label, o.drop_in) for o in outcomes if o.scenario.candidate != "twin" and o.drop_in > 0.05]
    assert not high, high


def test_twins_are_never_flagged(outcomes) -> None:
    twins = [o for o in outcomes if o.scenario.candidate == "twin"]
    assert len(twins) == 36
    flagged = [(o.scenario.label, o.flagged) for o in twins if o.flagged > 0.05]
    assert not flagged, flagged


def test_a_deterministic_twin_of_a_large_suite_is_a_drop_in(outcomes) -> None:
    # Deterministic twin: zero broken cases; 400 cases bound the rate well under 5%.
    twins = [o for o in outcomes if o.scenario.candidate == "twin" and o.scenario.noise == 0 and o.scenario.n >= 400]
    assert twins and all(o.drop_in == 1.0 for o in twins)


def test_a_candidate_breaking_three_times_the_maximum_is_found() -> None:
    # Power: at 15% broken on a deterministic incumbent, 400 cases flag it nearly always.
    for k in (1, 5):
        outcome = simulate(Scenario(k, 0.8, 0.0, 400, "broken", 0.15), suites=300)
        assert outcome is not None and outcome.flagged >= 0.99 and outcome.drop_in == 0


def test_an_identical_deterministic_candidate_on_eighty_cases_is_a_drop_in() -> None:
    found = evidence([1] * 80, [1] * 80, [True] * 80, SETTINGS)
    assert verdict(found, SETTINGS).rule == RULE_DROP_IN
    z = NormalDist().inv_cdf(0.975)
    assert found.regression_rate_ci == (0.0, pytest.approx(z * z / (80 + z * z), rel=1e-12))  # Wilson, 0 of 80
