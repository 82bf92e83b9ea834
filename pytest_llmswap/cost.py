"""Prices, monthly run cost, switching cost, break-even and the per-candidate verdict.

Pure functions over plain data: a response as a dict (``Response.to_dict``), prices as a dict, the run as
:class:`~pytest_llmswap.report.results.RunResults`. See docs/cost.md for the formulas and a worked example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report.results import CaseResult, ContractInfo, RunResults

DEFAULT_HOURLY_RATE = 100.0
DEFAULT_ALPHA = 0.05
DEFAULT_MAX_REGRESSION_RATE = 0.05
# "both": not recommended only when the regression is significant AND its rate is above the maximum;
# "either": when one of the two holds. Everything else that is not a drop-in needs rework.
NOT_RECOMMENDED_RULES = ("both", "either")
DEFAULT_NOT_RECOMMENDED_WHEN = "both"

DROP_IN = "drop-in"
REWORK = "migrate with rework"
NOT_RECOMMENDED = "not recommended"


def call_cost(response: Mapping[str, Any] | None, prices: Mapping[str, float | None] | None = None) -> float | None:
    """Cost in USD of one call, or None when nothing prices it.

    Configured prices win over the cost the backend recorded, because a configured price is a deliberate
    statement (a negotiated rate, a self-hosted model). Per-million-token prices are used when either is set;
    otherwise ``gpu_hour_usd / 3600 * latency_s`` (the GPU is billed for the wall time the call occupied it;
    measured throughput is already in the latency). Otherwise the backend's ``cost_usd`` (litellm's table).
    """
    if response is None:
        return None
    prices = prices or {}
    per_in, per_out, gpu_hour = (prices.get("input_per_mtok"), prices.get("output_per_mtok"),
                                 prices.get("gpu_hour_usd"))
    if per_in is not None or per_out is not None:
        usage = response.get("usage") or {}
        # output_tokens are the provider's completion tokens, which already include reasoning tokens.
        return (usage.get("input_tokens", 0) * (per_in or 0.0) + usage.get("output_tokens", 0) * (per_out or 0.0)) / 1e6
    if gpu_hour is not None and response.get("latency_s") is not None:
        return gpu_hour / 3600.0 * float(response["latency_s"])
    cost = response.get("cost_usd")
    return None if cost is None else float(cost)


def mean_cost(responses: Iterable[Mapping[str, Any] | None],
              prices: Mapping[str, float | None] | None = None) -> float | None:
    """Mean cost per call over ``responses``; None if any of them cannot be priced (a partial mean would lie)."""
    costs = [call_cost(r, prices) for r in responses if r is not None]
    if not costs or any(c is None for c in costs):
        return None
    return sum(costs) / len(costs)


def break_even_months(rework_usd: float, monthly_saving_usd: float | None) -> float | None:
    """Months until the monthly saving pays for the rework; None when it never does (or the saving is unknown)."""
    if monthly_saving_usd is None or monthly_saving_usd <= 0:
        return None
    return rework_usd / monthly_saving_usd


def switching_cost(results: RunResults) -> dict[str, dict[str, Any]]:
    """Switching cost of every candidate against the incumbent: monthly cost, rework, break-even.

    Monthly figures only count contracts with ``calls_per_month`` whose cost per call is known on both the
    incumbent (its golden samples) and the candidate, so the difference always compares like with like;
    the others are listed in ``unpriced_contracts``. See docs/cost.md for every field.
    """
    hourly_rate = float(results.settings.get("hourly_rate", DEFAULT_HOURLY_RATE))
    incumbent_prices = results.incumbent.prices if results.incumbent else None
    golden_samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rows: dict[str, dict[str, list[CaseResult]]] = {m.name: {} for m in results.candidates}
    for case in results.cases:
        # The same golden appears once per candidate row (and on replay rows): count each case once.
        golden_samples.setdefault(case.contract, {}).setdefault(case.case_id, case.golden)
        if case.candidate is not None:
            rows.setdefault(case.candidate, {}).setdefault(case.contract, []).append(case)
    incumbent_cost = {cid: mean_cost([s for samples in by_case.values() for s in samples], incumbent_prices)
                      for cid, by_case in golden_samples.items()}
    prices = {m.name: m.prices for m in results.candidates}
    return {name: _candidate_switching(by_contract, results.contracts, incumbent_cost, prices.get(name), hourly_rate)
            for name, by_contract in rows.items()}


def _candidate_switching(by_contract: dict[str, list[CaseResult]], contracts: list[ContractInfo],
                         incumbent_cost: dict[str, float | None], prices: Mapping[str, float | None] | None,
                         hourly_rate: float) -> dict[str, Any]:
    per_contract: dict[str, dict[str, Any]] = {}
    totals = {"incumbent": 0.0, "candidate": 0.0}
    priced_any = False
    unpriced: list[str] = []
    rework_contracts: list[str] = []
    rework_hours = 0.0
    for contract in contracts:
        cases = by_contract.get(contract.id, [])
        if not cases:
            continue
        regressions = sum(c.flip == "regression" for c in cases)
        exceeded = sum(bool(c.exceeded) for c in cases)
        needs_rework = regressions > 0 or exceeded > 0
        inc, cand = incumbent_cost.get(contract.id), mean_cost([c.output for c in cases], prices)
        entry: dict[str, Any] = {
            "calls_per_month": contract.calls_per_month,
            "incumbent_cost_per_call": inc, "candidate_cost_per_call": cand,
            "incumbent_monthly_usd": None, "candidate_monthly_usd": None, "regressions": regressions,
            "exceeded": exceeded, "needs_rework": needs_rework,
            "rework_usd": contract.rework_hours * hourly_rate if needs_rework else 0.0,
        }
        if needs_rework:
            rework_contracts.append(contract.id)
            rework_hours += contract.rework_hours
        if contract.calls_per_month is not None:
            if inc is None or cand is None:
                unpriced.append(contract.id)
            else:
                priced_any = True
                entry["incumbent_monthly_usd"] = contract.calls_per_month * inc
                entry["candidate_monthly_usd"] = contract.calls_per_month * cand
                totals["incumbent"] += entry["incumbent_monthly_usd"]
                totals["candidate"] += entry["candidate_monthly_usd"]
        per_contract[contract.id] = entry
    incumbent_monthly = totals["incumbent"] if priced_any else None
    candidate_monthly = totals["candidate"] if priced_any else None
    saving = None if not priced_any else incumbent_monthly - candidate_monthly
    rework_usd = rework_hours * hourly_rate
    all_outputs = [c.output for cases in by_contract.values() for c in cases]
    per_call = mean_cost(all_outputs, prices)
    return {
        "incumbent_monthly_usd": incumbent_monthly,
        "candidate_monthly_usd": candidate_monthly,
        "monthly_delta_usd": None if saving is None else -saving,
        "monthly_saving_usd": saving,
        "hourly_rate": hourly_rate,
        "rework_hours": rework_hours,
        "rework_usd": rework_usd,
        "rework_contracts": rework_contracts,
        "break_even_months": break_even_months(rework_usd, saving),
        "never_breaks_even": saving is not None and saving <= 0,
        "unpriced_contracts": unpriced,
        "cost_per_1k_calls": None if per_call is None else per_call * 1000,
        "contracts": per_contract,
    }


def verdict(summary: Mapping[str, Any], switching: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The migration verdict for one candidate from its summary (``summaries["candidates"][NAME]``) and switching cost.

    ``drop-in``: no significant regression (exact McNemar p >= alpha, or more improvements than regressions),
    regression rate <= ``max_regression_rate`` and no contract beyond tolerance. ``not recommended``: per
    ``not_recommended_when`` ("both": a significant regression and a rate above the maximum; "either": one of
    them), or no case ran. Anything else: ``migrate with rework``, naming the contracts that need it.
    """
    alpha = float(settings.get("alpha", DEFAULT_ALPHA))
    max_rate = float(settings.get("max_regression_rate", DEFAULT_MAX_REGRESSION_RATE))
    rule = settings.get("not_recommended_when", DEFAULT_NOT_RECOMMENDED_WHEN)
    if rule not in NOT_RECOMMENDED_RULES:
        raise ValueError(f"not_recommended_when must be one of {', '.join(NOT_RECOMMENDED_RULES)}, not {rule!r}")
    regressions, improvements = summary.get("regressions", 0), summary.get("improvements", 0)
    p = summary.get("mcnemar_p")
    rate = float(summary.get("regression_rate", 0.0))
    # McNemar is two-sided: a small p with more improvements than regressions is good news, not a regression.
    significant = p is not None and p < alpha and regressions > improvements
    over_max = rate > max_rate
    exceeded = [cid for cid, c in switching.get("contracts", {}).items() if c.get("exceeded")]
    reasons: list[str] = []
    if significant:
        reasons.append(f"significant regression: {regressions} regressions vs {improvements} improvements "
                       f"(McNemar p = {p:.3g} < alpha {alpha:g})")
    if over_max:
        reasons.append(f"regression rate {rate:.1%} is above the maximum {max_rate:.1%}")
    if exceeded:
        more = f" and {len(exceeded) - 3} more" if len(exceeded) > 3 else ""
        reasons.append(f"drift beyond tolerance in {len(exceeded)} contract(s): {', '.join(exceeded[:3])}{more}")
    if not summary.get("cases"):
        label = NOT_RECOMMENDED
        reasons.insert(0, "no case ran on this candidate")
    elif (significant and over_max) if rule == "both" else (significant or over_max):
        label = NOT_RECOMMENDED
    elif significant or over_max or exceeded:
        label = REWORK
    else:
        label = DROP_IN
        reasons.append(f"no significant regression ({regressions} regressions vs {improvements} improvements, "
                       f"alpha {alpha:g}), regression rate {rate:.1%} <= {max_rate:.1%}, "
                       "every contract within tolerance")
    return {
        "verdict": label,
        "reasons": reasons,
        # Also on a drop-in: a regression within noise still costs the rework hours counted in switching.
        "rework_contracts": list(switching.get("rework_contracts", [])),
        "significant_regression": significant,
        "regression_rate_over_max": over_max,
        "exceeded_contracts": exceeded,
        "alpha": alpha,
        "max_regression_rate": max_rate,
        "not_recommended_when": rule,
    }
