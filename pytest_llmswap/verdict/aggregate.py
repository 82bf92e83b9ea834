"""Per candidate and per contract summaries of a run's case results (pure: results in, summaries out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from typing import Any

import numpy as np

from ..contract import invariance
from ..drift import tokens
from ..drift.metrics import report_order
from ..results import CaseResult, RunResults, Unadapted
from ..settings import Settings
from ..types import Sample
from . import cost, stats
from .figures import pct
from .pricing import Pricing
from .summaries import (Adaptation, CandidateSummary, ContractSummary, Evidence, IncumbentSummary, InvarianceSummary,
                        MetricSummary, Summaries, Usage)


def summarize(results: RunResults) -> Summaries:
    """The summaries every report renders: one per candidate, one for the incumbent, switching and verdicts."""
    settings = results.run_settings
    by_candidate: dict[str, list[CaseResult]] = {m.name: [] for m in results.candidates}
    incumbent_rows: dict[tuple[str, str], CaseResult] = {}
    for case in results.cases:
        if case.candidate is None:
            incumbent_rows[(case.contract, case.case_id)] = case
        else:
            by_candidate.setdefault(case.candidate, []).append(case)
    # The incumbent is described by its goldens, whichever rows carried them.
    goldens = {(c.contract, c.case_id): c for c in results.cases if c.golden}
    goldens.update(incumbent_rows)
    models = {m.name: m for m in results.candidates}
    candidates = {name: _candidate(cases, cost.pricing_of(models.get(name)), settings)
                  for name, cases in by_candidate.items()}
    candidates = {name: replace(s, invariance=invariance_summary(c.invariance for c in by_candidate[name]))
                  for name, s in candidates.items()}
    switching = cost.switching_cost(results, settings) if candidates else {}
    return Summaries(
        incumbent=replace(_incumbent(results, list(goldens.values())),
                          invariance=invariance_summary(c.golden_invariance for c in goldens.values())),
        candidates=candidates,
        switching=switching,
        verdicts={name: cost.verdict(s, settings, rework=switching[name].rework_contracts,
                                     exceeded=tuple(cid for cid, c in switching[name].contracts.items() if c.exceeded),
                                     adaptation=s.adaptation)
                  for name, s in candidates.items()},
    )


def _candidate(cases: list[CaseResult], pricing: Pricing, settings: Settings) -> CandidateSummary:
    found = _evidence(cases, cases, settings,
                      noise=stats.noise_excess([c.beyond_noise for c in cases], [len(c.golden) for c in cases]))
    adapted = [c for c in cases if c.unadapted is not None]
    adaptation = None
    if adapted:
        asked = [c.unadapted or c for c in cases]
        adaptation = Adaptation(tuple(dict.fromkeys(c.contract for c in adapted)),
                                _evidence(cases, asked, settings), sum(a.held for a in asked))
    checks = sum(bool(c.candidate_passed) for c in cases)
    # The one pass rate every report shows: a case passes when it held (answered, checks pass, within tolerance);
    # a failed call is a failed case, so the denominator never shrinks when calls fail.
    passed = sum(c.held for c in cases)
    outputs = [c.output for c in cases if c.output is not None]
    fractions = [c.golden_pass_fraction or 0.0 for c in cases if c.candidate_passed is not None
                 and c.golden_passes is not None]
    contracts: dict[str, list[CaseResult]] = defaultdict(list)
    for case in cases:
        contracts[case.contract].append(case)
    return CandidateSummary(
        **{f.name: getattr(found, f.name) for f in fields(Evidence)},
        checks_passed=checks,
        passed=passed,
        pass_rate=_rate(passed, len(cases)),
        pass_rate_ci=_bounds(stats.wilson(passed, len(cases))) if cases else None,
        golden_pass_rate=_mean(fractions),
        tokens_per_passed_check=tokens.tokens_per_passed_check(outputs, checks),
        metrics=_metrics(cases),
        usage=_usage(outputs, pricing),
        contracts={cid: _contract(rows, pricing) for cid, rows in contracts.items()},
        adaptation=adaptation,
    )


def _evidence(cases: list[CaseResult], asked: Sequence[CaseResult | Unadapted], settings: Settings,
              noise: stats.NoiseExcess | None = None) -> Evidence:
    """The verdict's evidence of ``cases`` with each candidate answer taken from ``asked`` (the case itself, or
    its answer to the incumbent's prompt); a case beyond tolerance is a failed case, like a failed check."""
    answered = [(c, a) for c, a in zip(cases, asked) if a.candidate_passed is not None and c.golden_passes is not None]
    failed = [a for a in asked if a.call_error]
    return evidence([c.golden_passes or 0 for c, _ in answered], [len(c.golden) for c, _ in answered],
                    [a.held for _, a in answered], settings, cases=len(cases), failed_calls=len(failed),
                    first_error=failed[0].call_error if failed else None,
                    exceeded=sum(bool(a.exceeded) for a in asked), noise=noise)


def evidence(golden_passes: Sequence[int], golden_samples: Sequence[int], candidate_held: Sequence[bool],
             settings: Settings, *, cases: int | None = None, failed_calls: int = 0, first_error: str | None = None,
             exceeded: int = 0, noise: stats.NoiseExcess | None = None) -> Evidence:
    """The verdict's evidence from the answered cases, paired: the incumbent's passes of its K samples and
    whether the candidate held the case (checks pass, within tolerance). ``noise`` is ``stats.noise_excess`` of
    the cases' beyond-noise flags, when drift was measured. The plugin and tests/calibration.py both call this."""
    paired = stats.broken_cases(golden_passes, golden_samples, candidate_held, confidence=1 - settings.alpha)
    answered = paired.n
    # Exact: a sum of K-ths is compared with halves and thresholds (69, never 68.99999999999996).
    passes, samples = np.asarray(golden_passes, dtype=np.int64), np.asarray(golden_samples, dtype=np.int64)
    incumbent_passes = float(sum((Fraction(int(passes[samples == k].sum()), int(k)) for k in np.unique(samples)),
                                 Fraction(0)))
    drift = noise is not None and noise.cases > 0
    total = answered + failed_calls if cases is None else cases
    return Evidence(
        cases=total, failed_calls=failed_calls, failed_call_rate=_rate(failed_calls, total), first_error=first_error,
        answered=answered, incumbent_passes=incumbent_passes,
        regressions=paired.broken, improvements=paired.fixed, net_regressions=paired.broken - paired.fixed,
        noise_breaks=paired.noise,
        noise_measured=paired.noise_measured, p_worse=paired.p_worse if answered else None,
        regression_rate=paired.rate.estimate if answered else None,
        regression_rate_ci=_bounds(paired.rate) if answered else None,
        net_rate=paired.net.estimate if answered else None, net_rate_ci=_bounds(paired.net) if answered else None,
        min_detectable_rate=paired.min_detectable if answered else None,
        cases_needed=paired.cases_needed(settings.max_regression_rate) if answered else None,
        exceeded=exceeded, drifted=noise.beyond if drift else None, drift_cases=noise.cases if drift else 0,
        noise_p_value=noise.p_value if drift else None)


def invariance_summary(outcomes: Iterable[Sequence[dict[str, Any]]]) -> InvarianceSummary | None:
    """A model's invariance: the mean over cases of the share of each case's perturbed inputs that held, with a
    95% interval whose units are the cases (a case's perturbations are not independent of each other): exact
    Clopper-Pearson when every case has one perturbed input, else the paired score interval over the cases'
    shares. None when no case had a perturbed input."""
    shares = [invariance.tally([rows]) for rows in outcomes if rows]
    if not shares:
        return None
    interval = stats.score_interval([held / n for held, n in shares])
    return InvarianceSummary(sum(h for h, _ in shares), sum(n for _, n in shares), interval.estimate,
                             _bounds(interval))


def _contract(cases: list[CaseResult], pricing: Pricing) -> ContractSummary:
    metrics = _metrics(cases)
    return ContractSummary(
        cases=len(cases),
        failed_calls=sum(bool(c.call_error) for c in cases),
        checks_passed=sum(bool(c.candidate_passed) for c in cases),
        passed=sum(c.held for c in cases),
        regressions=sum(c.golden_pass_fraction or 0.0 for c in cases if c.flip == "regression"),
        improvements=sum(1 - (c.golden_pass_fraction or 0.0) for c in cases if c.flip == "improvement"),
        exceeded=sum(bool(c.exceeded) for c in cases),
        cost_per_call=pricing.mean_cost(c.output for c in cases if c.output),
        means={name: metrics[name].mean for name in report_order(metrics)},
    )


def _incumbent(results: RunResults, cases: list[CaseResult]) -> IncumbentSummary:
    pricing = cost.pricing_of(results.incumbent)
    samples: list[Sample] = [s for c in cases for s in c.golden]
    by_contract: dict[str, list[Sample]] = defaultdict(list)
    for case in cases:
        by_contract[case.contract].extend(case.golden)
    fractions = [c.golden_pass_fraction for c in cases if c.golden_pass_fraction is not None]
    return IncumbentSummary(
        name=results.incumbent.name if results.incumbent else "incumbent",
        golden_pass_rate=_mean(fractions),
        usage=_usage(samples, pricing),
        contract_cost_per_call={cid: pricing.mean_cost(rows) for cid, rows in by_contract.items()},
        golden_pass_rate_ci=_bounds(stats.wilson(round(sum(fractions)), len(fractions))) if fractions else None,
    )


def _metrics(cases: list[CaseResult]) -> dict[str, MetricSummary]:
    values: dict[str, list[float]] = defaultdict(list)
    floors: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        for name, value in case.metrics.items():
            if value is not None:
                values[name].append(float(value))
        for name, floor in case.floors.items():
            if floor is not None:
                floors[name].append(float(floor))
    return {name: MetricSummary(mean=_mean(vals), ci=_bounds(stats.bootstrap_mean(vals)), n=len(vals),
                                values=tuple(vals), noise_floor=_mean(floors.get(name, [])))
            for name, vals in values.items()}


def _bounds(interval: Any) -> tuple[float, float]:
    return (interval.low, interval.high)


def _usage(responses: Iterable[Sample], pricing: Pricing) -> Usage:
    rows = list(responses)
    latency = tokens.latency_summary(r.latency_s for r in rows)
    costs = [pricing.call_cost(r) for r in rows]
    out_tokens = [r.usage.output_tokens for r in rows]
    total = sum(r.usage.input_tokens for r in rows) + sum(out_tokens)
    priced = bool(costs) and all(c is not None for c in costs)
    return Usage(
        latency_p50=latency.p50, latency_p95=latency.p95, tokens_per_task=_mean(out_tokens), total_tokens=int(total),
        cost_usd=float(sum(costs)) if priced else None,  # type: ignore[arg-type]
        cost_per_call=pricing.mean_cost(rows),
    )


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: list[float] | list[int]) -> float | None:
    return float(sum(values) / len(values)) if values else None


@dataclass(frozen=True)
class StatisticalVerdict:
    """A statistical contract's outcome on one model row: passed, and one message saying why."""

    passed: bool
    message: str


def statistical_verdict(cases: list[CaseResult], min_pass_rate: float, max_regression_rate: float | None,
                        alpha: float, max_failed_call_rate: float = 0.0) -> StatisticalVerdict:
    """Does the row clear ``min_pass_rate`` (and stay under ``max_regression_rate``) with confidence ``1 - alpha``?

    The pass rate's lower Wilson bound must reach the threshold (a rate whose interval straddles it fails:
    the cases cannot show it); a failed call is a failed case. With ``max_regression_rate``, the net regression
    rate's upper bound (docs/metrics.md) must stay at or under it. Failed calls above ``max_failed_call_rate``
    (and a row with no answer at all, whatever it allows) fail the row: bounds such as ``min_pass_rate=0``
    cannot fail on cases that were never answered. The message names the worst cases.
    """
    n = len(cases)
    passed = sum(c.passed for c in cases)
    low = stats.wilson(passed, n, confidence=1 - 2 * alpha).low if n else 0.0
    problems = []
    failed = [c for c in cases if c.call_error]
    if failed and (len(failed) == n or len(failed) > max_failed_call_rate * n):
        what = "could not record" if failed[0].candidate is None else "got no answer for"
        problems.append(f"{what} {len(failed)} of {n} cases (first: {failed[0].call_error}): a rate without their "
                        "answers proves nothing; rerun (answers received are kept, only these are called again), "
                        "or tolerate some with max_failed_call_rate")
    if low < min_pass_rate:
        problems.append(f"pass rate {passed}/{n} = {passed / max(n, 1):.1%}: its lower {1 - alpha:.0%} bound "
                        f"{low:.1%} is below min_pass_rate {min_pass_rate:.1%}")
    judged = [c for c in cases if c.candidate_passed is not None and c.golden_passes is not None]
    if max_regression_rate is not None and judged:
        rate = stats.broken_cases([c.golden_passes or 0 for c in judged], [len(c.golden) for c in judged],
                                  [bool(c.candidate_passed) and not c.exceeded for c in judged],
                                  confidence=1 - 2 * alpha).rate
        if rate.high > max_regression_rate:
            problems.append(f"broken-case rate {rate.estimate:.1%}: its upper bound {pct(rate.high)} is above "
                            f"max_regression_rate {max_regression_rate:.1%}")
    if not problems:
        return StatisticalVerdict(True, f"pass rate {passed}/{n}, lower bound {low:.1%} >= {min_pass_rate:.1%}")
    # Regressions (the golden passed, the candidate does not) first: what the migration broke.
    worst = sorted((c for c in cases if not c.passed), key=lambda c: c.flip != "regression")
    shown = "; ".join(f"{c.case_id}: {(c.failure or c.check_message or '; '.join(c.exceeded) or 'failed')[:120]}"
                      for c in worst[:5])
    more = f" (and {len(worst) - 5} more)" if len(worst) > 5 else ""
    return StatisticalVerdict(False, "; ".join(problems) + (f". Failing cases: {shown}{more}" if worst else ""))
