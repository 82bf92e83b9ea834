"""The typed summaries every renderer reads: per candidate, per contract, the incumbent, switching, verdict.

Frozen dataclasses of plain values, made by :mod:`.aggregate` and :mod:`.cost`; ``RunResults.to_dict``
writes them into the JSON file and ``from_plain`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DROP_IN = "drop-in"
REWORK = "migrate with rework"
NOT_RECOMMENDED = "not recommended"
INCONCLUSIVE = "inconclusive"
VERDICTS = (DROP_IN, REWORK, NOT_RECOMMENDED, INCONCLUSIVE)


@dataclass(frozen=True)
class MetricSummary:
    """One drift metric over a candidate's cases: mean with a bootstrap interval, values, noise floor."""

    mean: float | None
    ci: tuple[float, float]
    n: int
    values: tuple[float, ...]
    noise_floor: float | None = None


@dataclass(frozen=True)
class Usage:
    """Latency, tokens and cost of a set of calls (cost per call None when any call is unpriced)."""

    latency_p50: float | None = None
    latency_p95: float | None = None
    tokens_per_task: float | None = None
    total_tokens: int = 0
    cost_usd: float | None = None
    cost_per_call: float | None = None


@dataclass(frozen=True)
class InvarianceSummary:
    """A model's invariance: how many of its perturbed inputs kept the checked output of the unperturbed answer,
    and ``rate``, the mean over cases of each case's share, with its 95% interval over the cases (docs/metrics.md,
    "Invariance")."""

    held: int
    perturbed: int
    rate: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class ContractSummary:
    """One contract on one candidate."""

    cases: int
    failed_calls: int
    checks_passed: int
    regressions: float
    improvements: float
    exceeded: int
    cost_per_call: float | None
    passed: int = 0  # cases that held: answered, checks pass, within tolerance
    means: dict[str, float | None] = field(default_factory=dict)  # each drift metric's mean, in report order


@dataclass(frozen=True)
class Evidence:
    """What the verdict reads of one candidate: its calls, its broken cases against the incumbent, drift.

    A case is *broken* when the incumbent passes it (its checks; beyond its own noise when K > 1) and the
    candidate fails it: its checks fail or it is beyond tolerance. Rates count answered cases; docs/cost.md
    names the method (``verdict.stats.broken_cases``).
    """

    cases: int
    failed_calls: int
    failed_call_rate: float | None  # failed calls over every case
    first_error: str | None
    answered: int                   # cases with an answer, on which the paired statistics are computed
    incumbent_passes: float         # sum of the incumbent's pass fractions over the answered cases
    regressions: float              # broken cases, weighted by the incumbent's pass fraction (docs/metrics.md)
    improvements: float             # fixed cases: a gain, never subtracted from the broken ones
    net_regressions: float          # broken minus fixed: shown beside the broken cases, never the gate
    noise_breaks: float             # the incumbent's own breakage over the same cases (0 when K = 1)
    noise_measured: bool            # every answered case has K >= 2 golden samples
    p_worse: float | None           # exact exchangeability test: is the candidate worse than the incumbent?
    regression_rate: float | None   # broken-case rate beyond the incumbent's noise
    regression_rate_ci: tuple[float, float] | None
    net_rate: float | None          # (broken - fixed) / answered, shown beside it
    net_rate_ci: tuple[float, float] | None
    min_detectable_rate: float | None  # the smallest broken-case rate this suite finds with 80% power
    cases_needed: int | None        # about how many cases would bound the rate under the maximum, at this spread
    exceeded: int                   # cases beyond tolerance (each one is broken where the incumbent passed)
    drifted: int | None             # cases beyond the incumbent's noise floor (None when K = 1 everywhere)
    drift_cases: int                # cases with a known noise floor
    noise_p_value: float | None



@dataclass(frozen=True)
class Adaptation:
    """Measured rework: a candidate asked its adapted prompt(s) and, for the same cases, the incumbent's own.

    ``before`` is the evidence with every adapted contract's cases judged on the incumbent's prompt (the other
    contracts as they are); the candidate's own evidence is the adapted one. docs/cost.md, "Measured rework".
    """

    contracts: tuple[str, ...]  # the contracts asked an adapted prompt
    before: Evidence
    passed_before: int  # cases that held on the incumbent's prompt

    def won_back(self, after: Evidence) -> float:
        """Broken cases the adapted prompt wins back (negative when it breaks more)."""
        return self.before.regressions - after.regressions


@dataclass(frozen=True)
class CandidateSummary(Evidence):
    """Everything measured on one candidate. Rates count a failed call as a failed case (see docs/cost.md)."""

    checks_passed: int = 0  # cases whose checks pass, whatever their drift ("checks passed" in the reports)
    passed: int = 0  # cases that held: answered, checks pass, within tolerance; ``pass_rate`` is its rate
    pass_rate: float | None = None
    pass_rate_ci: tuple[float, float] | None = None
    golden_pass_rate: float | None = None
    tokens_per_passed_check: float | None = None
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    contracts: dict[str, ContractSummary] = field(default_factory=dict)
    invariance: InvarianceSummary | None = None  # None when no contract declares invariant=[...]
    adaptation: Adaptation | None = None  # None when the candidate has no adapted prompt in this run


@dataclass(frozen=True)
class IncumbentSummary:
    """The incumbent as its goldens describe it (and priced like the candidates)."""

    name: str
    golden_pass_rate: float | None
    usage: Usage
    contract_cost_per_call: dict[str, float | None] = field(default_factory=dict)
    golden_pass_rate_ci: tuple[float, float] | None = None  # Wilson 95% over cases (passes rounded)
    invariance: InvarianceSummary | None = None  # from the goldens' answers to the perturbed inputs


@dataclass(frozen=True)
class ContractSwitching:
    """One contract's part of a candidate's switching cost."""

    calls_per_month: float | None
    incumbent_cost_per_call: float | None
    candidate_cost_per_call: float | None
    incumbent_monthly_usd: float | None
    candidate_monthly_usd: float | None
    regressions: float
    exceeded: int
    needs_rework: bool
    rework_usd: float
    adapted: bool = False  # the candidate was asked an adapted prompt: rework_usd estimates that adaptation


@dataclass(frozen=True)
class Switching:
    """What moving to the candidate costs: monthly run cost on both sides, rework, break-even."""

    incumbent_monthly_usd: float | None
    candidate_monthly_usd: float | None
    monthly_delta_usd: float | None
    monthly_saving_usd: float | None
    hourly_rate: float
    rework_hours: float
    rework_usd: float
    rework_contracts: tuple[str, ...]
    break_even_months: float | None
    never_breaks_even: bool
    unpriced_contracts: tuple[str, ...]
    unpriced_reason: str | None
    cost_per_1k_calls: float | None
    contracts: dict[str, ContractSwitching]


@dataclass(frozen=True)
class Verdict:
    """The decision for one candidate: a label from :data:`VERDICTS`, a one-line headline and the reasons.

    ``rule`` names the row of the verdict table in docs/cost.md that decided it; ``measured_rework`` is the line
    on a candidate asked an adapted prompt (also among the reasons).
    """

    verdict: str
    headline: str
    rule: str
    reasons: tuple[str, ...]
    rework_contracts: tuple[str, ...] = ()
    exceeded_contracts: tuple[str, ...] = ()
    measured_rework: str | None = None


@dataclass(frozen=True)
class Summaries:
    """All summaries of a run, by candidate name where per candidate."""

    incumbent: IncumbentSummary
    candidates: dict[str, CandidateSummary] = field(default_factory=dict)
    switching: dict[str, Switching] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
