"""Per candidate and per contract summaries of a run's case results (pure: results in, numbers out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from . import cost
from .drift import tokens
from .report.results import CaseResult, RunResults
from .types import Response


def summarize(results: RunResults) -> dict[str, Any]:
    """The ``summaries`` every report renders: one block per candidate, one for the incumbent."""
    by_candidate: dict[str, list[CaseResult]] = defaultdict(list)
    incumbent_rows: dict[tuple[str, str], CaseResult] = {}
    for case in results.cases:
        if case.candidate is None:
            incumbent_rows[(case.contract, case.case_id)] = case
        else:
            by_candidate[case.candidate].append(case)
    # The incumbent is described by its goldens, whichever rows carried them.
    goldens = {(c.contract, c.case_id): c for c in results.cases if c.golden}
    goldens.update(incumbent_rows)
    summaries: dict[str, Any] = {
        "candidates": {name: _candidate(cases) for name, cases in by_candidate.items()},
        "incumbent": _incumbent(results, list(goldens.values())),
    }
    if summaries["candidates"]:
        summaries["switching"] = cost.switching_cost(results)
        summaries["verdicts"] = {name: cost.verdict(summary, summaries["switching"][name], results.settings)
                                 for name, summary in summaries["candidates"].items()}
    return summaries


def _candidate(cases: list[CaseResult]) -> dict[str, Any]:
    from .drift import stats  # scipy: only paid when a candidate ran

    outputs = [c.output for c in cases if c.output]
    judged = [c for c in cases if c.candidate_passed is not None]
    golden_v = [bool(c.golden_passed) for c in judged]
    cand_v = [bool(c.candidate_passed) for c in judged]
    flips = stats.flips(golden_v, cand_v)
    passed = sum(cand_v)
    summary: dict[str, Any] = {
        "cases": len(cases),
        "items_passed": sum(c.passed for c in cases),
        "checks_passed": passed,
        "pass_rate": _rate(passed, len(judged)),
        "pass_rate_ci": _interval(stats.wilson(passed, len(judged))) if judged else None,
        "golden_pass_rate": flips.golden_pass_rate,
        "regressions": flips.regressions,
        "improvements": flips.improvements,
        "mcnemar_p": stats.mcnemar_exact(golden_v, cand_v).p_worse if judged else None,
        "regression_rate": _rate(flips.regressions, len(judged)),
        "regression_rate_ci": _interval(stats.regression_rate(golden_v, cand_v)) if judged else None,
        "exceeded": sum(bool(c.exceeded) for c in cases),
        "drifted": _drifted(cases),
        "noise": stats.noise_excess([c.beyond_noise for c in cases], [len(c.golden) for c in cases]).to_dict(),
        "tokens_per_passed_check": tokens.tokens_per_passed_check(map(Response.from_dict, outputs), passed),
        "errors": sum(c.output is None for c in cases),
        "metrics": _metrics(cases),
        **_usage(outputs),
    }
    contracts: dict[str, list[CaseResult]] = defaultdict(list)
    for case in cases:
        contracts[case.contract].append(case)
    summary["contracts"] = {cid: _contract(rows) for cid, rows in contracts.items()}
    return summary


def _contract(cases: list[CaseResult]) -> dict[str, Any]:
    metrics = _metrics(cases)
    return {
        "cases": len(cases),
        "checks_passed": sum(bool(c.candidate_passed) for c in cases),
        "regressions": sum(c.flip == "regression" for c in cases),
        "improvements": sum(c.flip == "improvement" for c in cases),
        "exceeded": sum(bool(c.exceeded) for c in cases),
        "mean_edit": metrics.get("edit", {}).get("mean"),
        "mean_semantic": metrics.get("semantic", {}).get("mean"),
        "cost_per_call": _usage([c.output for c in cases if c.output])["cost_per_call"],
    }


def _incumbent(results: RunResults, cases: list[CaseResult]) -> dict[str, Any]:
    samples = [c.golden[0] for c in cases if c.golden]
    contracts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        if case.golden:
            contracts[case.contract].append(case.golden[0])
    return {
        "name": results.incumbent.name if results.incumbent else "incumbent",
        "golden_pass_rate": _rate(sum(bool(c.golden_passed) for c in cases), len(cases)),
        **_usage(samples),
        "contracts": {cid: {"cost_per_call": _usage(rows)["cost_per_call"]} for cid, rows in contracts.items()},
    }


def _metrics(cases: list[CaseResult]) -> dict[str, dict[str, Any]]:
    from .drift import stats

    values: dict[str, list[float]] = defaultdict(list)
    floors: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        for name, value in case.metrics.items():
            if value is not None:
                values[name].append(float(value))
        for name, floor in case.floors.items():
            if floor is not None:
                floors[name].append(float(floor))
    return {name: {"mean": _mean(vals), "ci": _interval(stats.bootstrap_mean(vals)), "n": len(vals),
                   "values": vals, "noise_floor": _mean(floors.get(name, []))}
            for name, vals in values.items()}


def _drifted(cases: list[CaseResult]) -> int | None:
    """Cases beyond the incumbent's noise floor; None when no case has a known floor (K = 1)."""
    known = [c.beyond_noise for c in cases if c.beyond_noise is not None]
    return sum(known) if known else None


def _interval(interval: Any) -> list[float]:
    return [interval.low, interval.high]


def _usage(responses: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(responses)
    latency = tokens.latency_summary(r.get("latency_s") for r in rows)
    costs = [r["cost_usd"] for r in rows if r.get("cost_usd") is not None]
    out_tokens = [r.get("usage", {}).get("output_tokens", 0) for r in rows]
    total = sum(r.get("usage", {}).get("input_tokens", 0) for r in rows) + sum(out_tokens)
    return {
        "latency_p50": latency.p50,
        "latency_p95": latency.p95,
        "tokens_per_task": _mean(out_tokens),
        "total_tokens": int(total),
        "cost_usd": float(sum(costs)) if costs else None,
        "cost_per_call": cost.mean_cost(rows),
    }


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: list[float] | list[int]) -> float | None:
    return float(sum(values) / len(values)) if values else None
