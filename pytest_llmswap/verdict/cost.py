"""Monthly run cost, switching cost, break-even and the per-candidate verdict.

Pure functions over the run's results and summaries; docs/cost.md has the formulas, a worked example and the
verdict table (each of its rows is a ``RULE_*`` here and has a test in tests/test_verdict.py).
"""

from __future__ import annotations

from collections import defaultdict

from .pricing import GPU_HOUR_UNMEASURED, Pricing
from ..results import CaseResult, ContractInfo, ModelInfo, RunResults
from ..models import backends
from ..settings import Settings
from ..types import GOLDENS_KIND, Sample
from .figures import plural, pct
from .summaries import (DROP_IN, INCONCLUSIVE, NOT_RECOMMENDED, REWORK, Adaptation, ContractSwitching, Evidence,
                        Switching, Verdict)

RULE_NO_ANSWER = "no answer"
RULE_BREAKS_MOST = "breaks most cases"
RULE_ABOVE_MAX = "broken-case rate above the maximum"
RULE_FAILED_CALLS = "failed calls"
RULE_WORSE = "worse than the incumbent"
RULE_TOO_FEW = "too few cases"
RULE_DROP_IN = "drop-in"
RULE_ADAPTED = "drop-in with an adapted prompt"


def pricing_of(model: ModelInfo | None) -> Pricing:
    return Pricing.of(model.prices if model else None, model.throughput_tok_s if model else None)


def break_even_months(rework_usd: float, monthly_saving_usd: float | None) -> float | None:
    """Months until the monthly saving pays for the rework; None when it never does (or the saving is unknown)."""
    if monthly_saving_usd is None or monthly_saving_usd <= 0:
        return None
    return rework_usd / monthly_saving_usd


def hard_regression(case: CaseResult) -> bool:
    """The candidate failed a case on which the incumbent passed every recorded sample."""
    return case.flip == "regression" and case.golden_passes == len(case.golden)


def switching_cost(results: RunResults, settings: Settings) -> dict[str, Switching]:
    """Switching cost of every candidate against the incumbent: monthly cost, rework, break-even.

    Monthly figures only count contracts with ``calls_per_month`` whose cost per call is known on both the
    incumbent (its golden samples) and the candidate, so the difference compares like with like.
    """
    golden_samples: dict[str, dict[str, list[Sample]]] = defaultdict(dict)
    rows: dict[str, dict[str, list[CaseResult]]] = {m.name: defaultdict(list) for m in results.candidates}
    for case in results.cases:
        # The same golden appears once per candidate row (and on replay rows): count each case once.
        golden_samples[case.contract].setdefault(case.case_id, case.golden)
        if case.candidate is not None:
            rows.setdefault(case.candidate, defaultdict(list))[case.contract].append(case)
    incumbent = pricing_of(results.incumbent)
    incumbent_cost = {cid: incumbent.mean_cost(s for samples in by_case.values() for s in samples)
                      for cid, by_case in golden_samples.items()}
    models = {m.name: m for m in results.candidates}
    return {name: _switching(by_contract, results.contracts, incumbent_cost, models.get(name), results.incumbent,
                             settings.hourly_rate)
            for name, by_contract in rows.items()}


def _switching(by_contract: dict[str, list[CaseResult]], contracts: list[ContractInfo],
               incumbent_cost: dict[str, float | None], model: ModelInfo | None, incumbent: ModelInfo | None,
               hourly_rate: float) -> Switching:
    pricing = pricing_of(model)
    per_contract: dict[str, ContractSwitching] = {}
    inc_total = cand_total = 0.0
    priced_any = False
    unpriced: list[str] = []
    sides: set[str] = set()  # which of the two had no price on some contract
    rework_contracts: list[str] = []
    rework_hours = 0.0
    for contract in contracts:
        cases = by_contract.get(contract.id, [])
        if not cases:
            continue
        exceeded = sum(bool(c.exceeded) for c in cases)
        # An adapted prompt is rework already measured: rework_hours is then the estimate of adapting it.
        adapted = any(c.unadapted is not None for c in cases)
        needs_rework = exceeded > 0 or adapted or any(hard_regression(c) for c in cases)
        inc = incumbent_cost.get(contract.id)
        cand = pricing.mean_cost(c.output for c in cases)
        monthly = (None, None)
        if contract.calls_per_month is not None:
            if inc is None or cand is None:
                unpriced.append(contract.id)
                sides.update(side for side, cost in (("incumbent", inc), ("candidate", cand)) if cost is None)
            else:
                priced_any = True
                monthly = (contract.calls_per_month * inc, contract.calls_per_month * cand)
                inc_total += monthly[0]
                cand_total += monthly[1]
        if needs_rework:
            rework_contracts.append(contract.id)
            rework_hours += contract.rework_hours
        per_contract[contract.id] = ContractSwitching(
            calls_per_month=contract.calls_per_month, incumbent_cost_per_call=inc, candidate_cost_per_call=cand,
            incumbent_monthly_usd=monthly[0], candidate_monthly_usd=monthly[1],
            regressions=sum(_weight(c) for c in cases), exceeded=exceeded, needs_rework=needs_rework,
            rework_usd=contract.rework_hours * hourly_rate if needs_rework else 0.0, adapted=adapted)
    saving = inc_total - cand_total if priced_any else None
    rework_usd = rework_hours * hourly_rate
    per_call = pricing.mean_cost(c.output for cases in by_contract.values() for c in cases)
    return Switching(
        incumbent_monthly_usd=inc_total if priced_any else None,
        candidate_monthly_usd=cand_total if priced_any else None,
        monthly_delta_usd=None if saving is None else -saving, monthly_saving_usd=saving,
        hourly_rate=hourly_rate, rework_hours=rework_hours, rework_usd=rework_usd,
        rework_contracts=tuple(rework_contracts), break_even_months=break_even_months(rework_usd, saving),
        never_breaks_even=saving is not None and saving <= 0, unpriced_contracts=tuple(unpriced),
        unpriced_reason=_unpriced_reason([(who, pricing_of(info), info) for who, info in
                                          (("incumbent", incumbent), ("candidate", model)) if who in sides]),
        cost_per_1k_calls=None if per_call is None else per_call * 1000, contracts=per_contract)


def _weight(case: CaseResult) -> float:
    fraction = case.golden_pass_fraction
    return fraction if case.flip == "regression" and fraction is not None else 0.0


def _unpriced_reason(unpriced: list[tuple[str, Pricing, ModelInfo | None]]) -> str | None:
    """Why a side (``incumbent`` or ``candidate``) has no price, with the exact fix; None when both are priced."""
    for who, pricing, info in unpriced:
        name = info.name if info else who
        if pricing.gpu_hour_usd is not None and pricing.throughput_tok_s is None:
            hint = f" (pass --incumbent-model {name} so it is measured)" if who == "incumbent" else ""
            return f"the {who} {name} is {GPU_HOUR_UNMEASURED}{hint}"
        if info is None or info.kind == GOLDENS_KIND:  # goldens recorded before they named their model
            return ("the incumbent's goldens do not name a configured model: pass --incumbent-model NAME, a "
                    "[tool.llmswap.models.NAME] with input_per_mtok/output_per_mtok or gpu_hour_usd (or re-record "
                    "with it)")
        known = (f" and litellm's table has no price for {info.resolved_id}"
                 if (kind := backends.find(info.kind)) and kind.litellm_prices and info.resolved_id else "")
        # A spec (provider/model, hf:PATH) has no table of its own yet: it needs a NAME, passed instead of the spec.
        entry = (f'a [tool.llmswap.models.NAME] with model = "{name}", and pass NAME instead of the spec'
                 if "/" in name or ":" in name else f"[tool.llmswap.models.{name}]")
        return (f"the {who} {name} has no configured price{known}: set input_per_mtok and output_per_mtok "
                f"(or gpu_hour_usd) in {entry}")
    return None


def verdict(e: Evidence, settings: Settings, *, rework: tuple[str, ...] = (),
            exceeded: tuple[str, ...] = (), adaptation: Adaptation | None = None) -> Verdict:
    """The migration verdict for one candidate: the first row of the verdict table (docs/cost.md) that applies.

    Every rule reads the broken-case rate (``verdict.stats.broken_cases``); every rule that flags a candidate has a
    significance test behind it, so a candidate that answers like the incumbent is flagged in at most about
    ``alpha / 2`` of suites (tests/test_calibration.py simulates it). ``rework`` and ``exceeded`` name contracts.
    With an ``adaptation`` the evidence ``e`` is the candidate on its adapted prompts: it is judged as it would
    run, and a drop-in there still needs the adaptation, so it is a rework (``RULE_ADAPTED``).
    """
    alpha, max_rate = settings.alpha, settings.max_regression_rate
    measured = None if adaptation is None else _measured_rework(e, adaptation, settings)

    def decide(label: str, rule: str, headline: str, *reasons: str) -> Verdict:
        if label == DROP_IN and adaptation is not None:
            label, rule = REWORK, RULE_ADAPTED
            headline = f"with its adapted prompt for {', '.join(adaptation.contracts)}, {headline}"
        shown = (headline, measured, *reasons) if measured else (headline, *reasons)
        return Verdict(label, f"{label}: {headline}", rule, shown, rework, exceeded, measured)

    failed = f"{e.failed_calls} of {e.cases} calls failed"
    if e.answered == 0:
        why = f"every call failed ({failed}): {e.first_error}" if e.cases else "no case ran on this candidate"
        return decide(INCONCLUSIVE, RULE_NO_ANSWER, why)
    low, high = e.regression_rate_ci or (0.0, 1.0)
    # Breakage is shown when the rate's lower end clears 0 (one-sided alpha / 2); with one golden sample the
    # incumbent's own noise is not measured, so the exact paired test must also say, at the same level, that the
    # candidate is worse than the incumbent.
    shown = low > 0 and (e.noise_measured or (e.p_worse is not None and e.p_worse < alpha / 2))
    broken = _broken(e)
    if shown and low * e.answered > e.incumbent_passes / 2:
        return decide(NOT_RECOMMENDED, RULE_BREAKS_MOST,
                      f"breaks {_count(e.regressions - e.noise_breaks)} of the {_count(e.incumbent_passes)} cases "
                      f"the incumbent passes", broken, _significance(e))
    if shown and low > max_rate:
        return decide(NOT_RECOMMENDED, RULE_ABOVE_MAX, f"{broken} is above the maximum {pct(max_rate)}",
                      _significance(e))
    if e.failed_call_rate is not None and e.failed_call_rate > settings.max_failed_call_rate:
        return decide(INCONCLUSIVE, RULE_FAILED_CALLS,
                      f"{failed} ({pct(e.failed_call_rate)}); rerun to complete the evidence (answers already "
                      f"received are kept): {e.first_error}")
    drift = _drift_problem(e, settings)
    # Breakage shown but bounded under the maximum is a drop-in (its contracts are in ``rework``): flag only what
    # the suite cannot bound.
    unbounded = shown and high > max_rate
    if unbounded or drift:
        worse = "more than the incumbent's own noise explains" if e.noise_measured else \
            f"worse than the incumbent (p = {e.p_worse:.3g})"
        reasons = [f"{broken}, {worse}"] if unbounded else []
        if exceeded:
            reasons.append(f"beyond tolerance in {plural(len(exceeded), 'contract')}: {', '.join(exceeded[:3])}"
                           + (f" and {len(exceeded) - 3} more" if len(exceeded) > 3 else ""))
        if drift:
            reasons.append(drift)
        return decide(REWORK, RULE_WORSE, reasons[0], *reasons[1:], _significance(e))
    if high > max_rate:
        return decide(INCONCLUSIVE, RULE_TOO_FEW, f"{broken}: {plural(e.answered, 'case')} cannot show it is below "
                      f"{pct(max_rate)}; {_more_cases(e, max_rate)}", *_noise_hint(e), _significance(e))
    noise = " and drift within the incumbent's noise" if e.drift_cases else ""
    return decide(DROP_IN, RULE_DROP_IN,
                  f"broken-case rate {pct(e.regression_rate)} (at most {pct(high)}) is within {pct(max_rate)}, no "
                  f"failed call{noise}", *_noise_hint(e), _significance(e))


def _measured_rework(after: Evidence, adaptation: Adaptation, settings: Settings) -> str:
    """One line: the candidate's verdict and broken cases on the incumbent's prompt, and what its adapted prompt
    wins back."""
    before = adaptation.before
    won = adaptation.won_back(after)
    change = (f"wins back {_count(won)} of its {_count(before.regressions)} broken cases, "
              f"{_count(after.regressions)} remain" if won >= 0
              else f"breaks {_count(-won)} more cases ({_count(after.regressions)} broken in all)")
    return (f"measured rework: on the incumbent's prompt {verdict(before, settings).verdict}, {_broken(before)}; "
            f"the adapted prompt {change}")


def _broken(e: Evidence) -> str:
    low, high = e.regression_rate_ci or (0.0, 1.0)
    beyond = " beyond the incumbent's noise" if e.noise_measured else ""
    return f"broken-case rate{beyond} {pct(e.regression_rate)} [{pct(low)}, {pct(high)}]"


def _count(value: float) -> str:
    return f"{max(0.0, value):.3g}"


def _more_cases(e: Evidence, max_rate: float) -> str:
    if e.cases_needed is None:
        return (f"the rate observed is not below {pct(max_rate)}, so more cases at this rate would not show it "
                "(fix the broken cases, or adapt the prompt)")
    return (f"about {plural(e.cases_needed, 'case')} would show a broken-case rate below {pct(max_rate)} at the "
            "rate and spread observed")


def _noise_hint(e: Evidence) -> tuple[str, ...]:
    if e.noise_measured or not e.regressions:
        return ()
    return ("with one golden sample per case the incumbent's own noise is not measured, so every case it passed "
            "once and the candidate failed counts as broken; record K >= 3 samples (--llmswap-samples 3)",)


def _significance(e: Evidence) -> str:
    p = "n/a" if e.p_worse is None else f"{e.p_worse:.3g}"
    net_low, net_high = e.net_rate_ci or (0.0, 0.0)
    return (f"{_count(e.regressions)} broken, {_count(e.improvements)} fixed (net {pct(e.net_rate)} [{pct(net_low)}, "
            f"{pct(net_high)}]), weighted by the incumbent's pass fraction; p = {p} that the incumbent would do "
            "this badly")


def _drift_problem(e: Evidence, settings: Settings) -> str | None:
    """Drift beyond the incumbent's noise stops a drop-in when it is both common and not chance."""
    if not e.drifted or not e.drift_cases:
        return None
    share = e.drifted / e.drift_cases
    if share > settings.max_drift_rate and e.noise_p_value is not None and e.noise_p_value < settings.alpha:
        return (f"drift beyond the incumbent's own noise in {e.drifted} of {e.drift_cases} cases ({share:.0%}, "
                f"above {settings.max_drift_rate:.0%})")
    return None
