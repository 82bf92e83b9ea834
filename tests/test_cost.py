"""Cost arithmetic against hand-computed values, and every branch of the verdict rule."""

from __future__ import annotations

import pytest

from pytest_llmswap.cost import (DROP_IN, NOT_RECOMMENDED, REWORK, break_even_months, call_cost, mean_cost,
                                 switching_cost, verdict)
from pytest_llmswap.report.results import CaseResult, ContractInfo, ModelInfo, RunResults


def response(cost=None, latency=None, inp=0, out=0, reasoning=0):
    return {"text": "x", "usage": {"input_tokens": inp, "output_tokens": out, "reasoning_tokens": reasoning},
            "latency_s": latency, "cost_usd": cost}


class TestCallCost:
    def test_recorded_cost_when_nothing_is_configured(self):
        assert call_cost(response(cost=0.0123)) == 0.0123

    def test_configured_token_prices_win_over_the_recorded_cost(self):
        prices = {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
        # 1,000 x $0.50/M + 300 x $1.50/M; the 100 reasoning tokens are part of the 300 completion tokens
        assert call_cost(response(cost=9.0, inp=1000, out=300, reasoning=100), prices) == pytest.approx(0.00095)

    def test_only_one_token_price_configured_prices_the_other_side_at_zero(self):
        assert call_cost(response(inp=2_000_000, out=5), {"input_per_mtok": 0.25}) == pytest.approx(0.5)

    def test_gpu_hour_price_times_measured_latency(self):
        # $3.60 per hour is $0.001 per second
        assert call_cost(response(latency=2.5), {"gpu_hour_usd": 3.6}) == pytest.approx(0.0025)

    def test_gpu_hour_without_latency_falls_back_to_the_recorded_cost(self):
        assert call_cost(response(cost=0.01), {"gpu_hour_usd": 3.6}) == 0.01

    def test_unpriced(self):
        assert call_cost(response()) is None
        assert call_cost(None) is None

    def test_mean_cost_is_none_when_any_call_is_unpriced(self):
        assert mean_cost([response(cost=0.01), response(cost=0.03)]) == pytest.approx(0.02)
        assert mean_cost([response(cost=0.01), response()]) is None
        assert mean_cost([]) is None


def test_break_even():
    assert break_even_months(1560.0, 404.0) == pytest.approx(3.861386, abs=1e-6)
    assert break_even_months(0.0, 10.0) == 0.0
    assert break_even_months(100.0, 0.0) is None
    assert break_even_months(100.0, -5.0) is None
    assert break_even_months(100.0, None) is None


def case(contract, case_id, candidate, golden_costs, output, flip=None, exceeded=()):
    return CaseResult(contract=contract, case_id=case_id, candidate=candidate, variables={}, prompt="p",
                      golden=[response(cost=c) for c in golden_costs], output=output, flip=flip,
                      exceeded=list(exceeded))


@pytest.fixture
def run() -> RunResults:
    """Contracts A (100k calls/month), B (20k) and C (no volume); candidates priced three different ways."""
    cheap_prices = {"input_per_mtok": 0.5, "output_per_mtok": 1.5, "gpu_hour_usd": None}
    cheap = response(cost=0.5, inp=1000, out=200)  # configured prices: $0.0008 per call, not the recorded $0.5
    cases = []
    for name, outputs in {
        "cheap": {"a1": cheap, "a2": cheap, "b1": cheap, "c1": cheap},
        "gpu": {"a1": response(latency=2.0), "a2": response(latency=4.0), "b1": response(latency=20.0),
                "c1": response(latency=1.0)},
        "free": {"a1": response(), "a2": response(), "b1": response(), "c1": response()},
    }.items():
        cases += [
            case("A", "a1", name, [0.002, 0.004], outputs["a1"], exceeded=["semantic"] if name == "gpu" else ()),
            case("A", "a2", name, [0.003], outputs["a2"]),
            case("B", "b1", name, [0.01], outputs["b1"], flip="regression" if name == "cheap" else None),
            case("C", "c1", name, [0.001], outputs["c1"], flip="regression" if name == "cheap" else "improvement"),
        ]
    return RunResults(
        created_at="2026-01-01T00:00:00Z", incumbent=ModelInfo("inc", "openai/gpt-4o", "litellm"),
        candidates=[ModelInfo("cheap", "x/cheap", "litellm", prices=cheap_prices),
                    ModelInfo("gpu", "hf:./q", "hf", prices={"gpu_hour_usd": 3.6}),
                    ModelInfo("free", "hf:./f", "hf")],
        contracts=[ContractInfo("A", rework_hours=3, calls_per_month=100_000),
                   ContractInfo("B", rework_hours=5, calls_per_month=20_000),
                   ContractInfo("C", rework_hours=8, calls_per_month=None)],
        cases=cases, settings={"hourly_rate": 120.0})


def test_switching_cost_of_a_cheaper_candidate_to_the_cent(run):
    s = switching_cost(run)["cheap"]
    # incumbent: A = mean(0.002, 0.004, 0.003) = $0.003 x 100k = $300; B = $0.01 x 20k = $200
    assert round(s["incumbent_monthly_usd"], 2) == 500.00
    # candidate: $0.0008 per call x 120k calls
    assert round(s["candidate_monthly_usd"], 2) == 96.00
    assert round(s["monthly_saving_usd"], 2) == 404.00
    assert round(s["monthly_delta_usd"], 2) == -404.00
    # B and C regressed: (5 + 8) h x $120; C counts for rework although it has no monthly volume
    assert s["rework_contracts"] == ["B", "C"]
    assert s["rework_hours"] == 13
    assert round(s["rework_usd"], 2) == 1560.00
    assert s["break_even_months"] == pytest.approx(1560 / 404)
    assert s["never_breaks_even"] is False
    assert round(s["cost_per_1k_calls"], 2) == 0.80
    assert s["contracts"]["A"] == {
        "calls_per_month": 100_000, "incumbent_cost_per_call": pytest.approx(0.003),
        "candidate_cost_per_call": pytest.approx(0.0008), "incumbent_monthly_usd": pytest.approx(300.0),
        "candidate_monthly_usd": pytest.approx(80.0), "regressions": 0, "exceeded": 0, "needs_rework": False,
        "rework_usd": 0.0}
    assert s["contracts"]["C"]["incumbent_monthly_usd"] is None and s["unpriced_contracts"] == []


def test_switching_cost_of_a_dearer_gpu_candidate_never_breaks_even(run):
    s = switching_cost(run)["gpu"]
    # $3.60/h = $0.001/s: A = mean(2 s, 4 s) -> $0.003 x 100k = $300; B = 20 s -> $0.02 x 20k = $400
    assert round(s["candidate_monthly_usd"], 2) == 700.00
    assert round(s["monthly_delta_usd"], 2) == 200.00
    assert s["rework_contracts"] == ["A"] and round(s["rework_usd"], 2) == 360.00  # A exceeded tolerance
    assert s["break_even_months"] is None and s["never_breaks_even"] is True


def test_unpriced_candidate_has_unknown_monthly_cost_not_zero(run):
    s = switching_cost(run)["free"]
    assert s["candidate_monthly_usd"] is None and s["incumbent_monthly_usd"] is None
    assert s["unpriced_contracts"] == ["A", "B"]  # C has no volume, so it is not missing a price
    assert s["break_even_months"] is None and s["never_breaks_even"] is False
    assert s["rework_usd"] == 0.0 and s["cost_per_1k_calls"] is None


def test_hourly_rate_defaults_to_100(run):
    run.settings = {}
    assert switching_cost(run)["cheap"]["rework_usd"] == pytest.approx(1300.0)


def summary(regressions=0, improvements=0, p=1.0, rate=0.0, cases=100):
    return {"cases": cases, "regressions": regressions, "improvements": improvements, "mcnemar_p": p,
            "regression_rate": rate}


def switching(exceeded=(), rework=()):
    return {"contracts": {cid: {"exceeded": 1 if cid in exceeded else 0} for cid in {"A", "B", *exceeded}},
            "rework_contracts": list(rework)}


class TestVerdict:
    def test_drop_in(self):
        v = verdict(summary(regressions=1, improvements=0, p=0.5, rate=0.01), switching(rework=["A"]), {})
        assert v["verdict"] == DROP_IN
        assert v["significant_regression"] is False and v["regression_rate_over_max"] is False
        assert v["rework_contracts"] == ["A"]  # an insignificant regression still costs its rework

    def test_significant_improvement_is_not_a_regression(self):
        v = verdict(summary(regressions=1, improvements=30, p=1e-6, rate=0.01), switching(), {})
        assert v["verdict"] == DROP_IN

    def test_drift_beyond_tolerance_needs_rework_and_names_the_contract(self):
        v = verdict(summary(), switching(exceeded=["B"], rework=["B"]), {})
        assert v["verdict"] == REWORK
        assert v["exceeded_contracts"] == ["B"] and v["rework_contracts"] == ["B"]
        assert any("B" in r for r in v["reasons"])

    def test_rate_over_max_but_not_significant_needs_rework(self):
        v = verdict(summary(regressions=8, improvements=3, p=0.2, rate=0.08), switching(rework=["A"]), {})
        assert v["verdict"] == REWORK and v["regression_rate_over_max"] is True

    def test_significant_but_under_max_needs_rework(self):
        v = verdict(summary(regressions=40, improvements=5, p=1e-5, rate=0.04, cases=1000), switching(), {})
        assert v["verdict"] == REWORK and v["significant_regression"] is True

    def test_significant_and_over_max_is_not_recommended(self):
        v = verdict(summary(regressions=12, improvements=1, p=0.002, rate=0.12), switching(rework=["A"]), {})
        assert v["verdict"] == NOT_RECOMMENDED
        assert len(v["reasons"]) == 2

    def test_either_rule_rejects_on_one_condition(self):
        v = verdict(summary(regressions=8, improvements=3, p=0.2, rate=0.08), switching(),
                    {"not_recommended_when": "either"})
        assert v["verdict"] == NOT_RECOMMENDED

    def test_settings_change_the_thresholds(self):
        s = summary(regressions=12, improvements=1, p=0.03, rate=0.12)
        assert verdict(s, switching(), {"alpha": 0.01})["verdict"] == REWORK  # p = 0.03 is no longer significant
        assert verdict(s, switching(), {"alpha": 0.01, "max_regression_rate": 0.2})["verdict"] == DROP_IN

    def test_no_cases_is_not_recommended(self):
        assert verdict(summary(cases=0), switching(), {})["verdict"] == NOT_RECOMMENDED

    def test_unknown_rule_is_a_clear_error(self):
        with pytest.raises(ValueError, match="not_recommended_when must be one of both, either"):
            verdict(summary(), switching(), {"not_recommended_when": "sometimes"})


def test_switching_feeds_verdict(run):
    sw = switching_cost(run)["gpu"]
    assert verdict(summary(), sw, run.settings)["verdict"] == REWORK  # A exceeded tolerance on the GPU model
