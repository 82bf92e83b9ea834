"""Simulated suites for the verdict's calibration: tests/test_calibration.py asserts on them, and
benchmarks/bench_calibration.py writes the full table into docs/cost.md.

A suite has ``n`` cases drawn from a population. The incumbent is right on a share ``pass_rate`` of the cases; a
deterministic incumbent always answers the same (pass probability 1 or 0), a noisy one flips each answer with
probability ``noise`` (0.85 or 0.15). ``K`` golden samples are drawn per case. The candidate is a twin (same pass
probability as the incumbent), or *breaks* a share of cases (pass probability 0), or breaks some and *fixes*
twice as many of the cases the incumbent gets wrong (pass probability 1). The true broken-case rate of the
population is known exactly, so the interval's coverage is measured against it; each suite goes through
``aggregate.evidence`` and ``cost.verdict``, the functions the plugin calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from pytest_llmswap.verdict.aggregate import evidence
from pytest_llmswap.verdict.cost import verdict
from pytest_llmswap.settings import Settings
from pytest_llmswap.verdict.summaries import DROP_IN, NOT_RECOMMENDED, REWORK

SETTINGS = Settings()
CANDIDATES = ("twin", "broken", "broken and fixed")


@dataclass(frozen=True)
class Scenario:
    k: int
    pass_rate: float
    noise: float
    n: int
    candidate: str
    rate: float  # the broken-case rate the candidate is built to have (0 for a twin)

    @property
    def label(self) -> str:
        noisy = f"{self.noise:.0%} noisy" if self.noise else "deterministic"
        return f"K={self.k} pass {self.pass_rate:.0%} {noisy} n={self.n} {self.candidate} @{self.rate:.0%}"


@dataclass(frozen=True)
class Population:
    """Case types: (probability, incumbent pass probability p, candidate pass probability q)."""

    types: tuple[tuple[float, float, float], ...]

    def true_rate(self, k: int) -> float:
        """E[p (1 - q)] minus the incumbent's own breakage E[p (1 - p)] when K >= 2 measures it."""
        return sum(w * (p * (1 - q) - (k > 1) * p * (1 - p)) for w, p, q in self.types)


def population(pass_rate: float, noise: float, broken: float, fixed: float) -> Population:
    types = []
    for right, share in ((True, pass_rate), (False, 1 - pass_rate)):
        p = 1 - noise if right else noise
        fixes = 0.0 if right else fixed
        types += [(share * broken, p, 0.0), (share * fixes, p, 1.0), (share * (1 - broken - fixes), p, p)]
    return Population(tuple(t for t in types if t[0] > 0))


def candidate_population(s: Scenario) -> Population | None:
    """The population whose true broken-case rate is ``s.rate``; None when no candidate of that kind has it
    (with K = 1 a noisy incumbent's twin already breaks more than 5%)."""
    if s.candidate == "twin":
        return population(s.pass_rate, s.noise, 0.0, 0.0)
    ratio = 0.0 if s.candidate == "broken" else 2.0
    low, high = 0.0, 1 / (1 + ratio)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if population(s.pass_rate, s.noise, mid, ratio * mid).true_rate(s.k) < s.rate \
            else (low, mid)
    found = population(s.pass_rate, s.noise, low, ratio * low)
    return found if abs(found.true_rate(s.k) - s.rate) < 1e-9 else None


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    true_rate: float
    suites: int
    coverage: float     # share of suites whose interval holds the true rate
    drop_in: float      # share of suites called drop-in
    flagged: float      # share called "migrate with rework" or "not recommended"


def suites_for(s: Scenario) -> int:
    """1,000 suites, 2,000 where the interval rests on the normal approximation (a noisy incumbent with K >= 2):
    its coverage is closest to nominal there, so the simulation's own error (0.7 points at 1,000) is halved."""
    return 2000 if s.noise and s.k > 1 else 1000


def simulate(s: Scenario, suites: int | None = None, seed: int = 0) -> Outcome | None:
    """Draw suites of the scenario and judge each with the plugin's evidence and verdict."""
    suites = suites or suites_for(s)
    pop = candidate_population(s)
    if pop is None:
        return None
    rng = np.random.default_rng(seed)
    weights = np.array([w for w, _, _ in pop.types])
    p_of = np.array([p for _, p, _ in pop.types])
    q_of = np.array([q for _, _, q in pop.types])
    truth = pop.true_rate(s.k)
    kinds = rng.choice(len(weights), size=(suites, s.n), p=weights / weights.sum())
    passes = rng.binomial(s.k, p_of[kinds])
    held = rng.random((suites, s.n)) < q_of[kinds]
    samples = [s.k] * s.n
    covered = drop_in = flagged = 0
    for i in range(suites):
        found = evidence(passes[i], samples, held[i], SETTINGS)
        low, high = found.regression_rate_ci or (0.0, 1.0)
        covered += low <= truth <= high
        label = verdict(found, SETTINGS).verdict
        drop_in += label == DROP_IN
        flagged += label in (REWORK, NOT_RECOMMENDED)
    return Outcome(s, truth, suites, covered / suites, drop_in / suites, flagged / suites)


def grid(rate: float = SETTINGS.max_regression_rate) -> list[Scenario]:
    """The issue's scenarios: K, the incumbent's pass rate and noise, suite size, three kinds of candidate at
    the maximum broken-case rate (the twin at 0)."""
    return [Scenario(k, pass_rate, noise, n, kind, 0.0 if kind == "twin" else rate)
            for k, pass_rate, noise, n, kind in product((1, 5), (0.3, 0.8, 0.95), (0.0, 0.15), (50, 400, 1000),
                                                        CANDIDATES)]
