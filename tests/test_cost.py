"""Cost arithmetic against hand-computed values, and every branch of the verdict rule."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from pytest_llmswap.verdict.cost import break_even_months, switching_cost
from pytest_llmswap.verdict.pricing import Pricing
from pytest_llmswap.results import CaseResult, ContractInfo, ModelInfo, RunResults
from pytest_llmswap.settings import Settings
from pytest_llmswap.types import Prices, Sample, Usage


def response(cost=None, latency=None, inp=0, out=0, reasoning=0):
    return Sample("x", usage=Usage(input_tokens=inp, output_tokens=out, reasoning_tokens=reasoning),
                  latency_s=latency, cost_usd=cost)


class TestCallCost:
    def test_recorded_cost_when_nothing_is_configured(self):
        assert Pricing().call_cost(response(cost=0.0123)) == 0.0123

    def test_configured_token_prices_win_over_the_recorded_cost(self):
        prices = Pricing(input_per_mtok=0.5, output_per_mtok=1.5)
        # 1,000 x $0.50/M + 300 x $1.50/M; the 100 reasoning tokens are part of the 300 completion tokens
        assert prices.call_cost(response(cost=9.0, inp=1000, out=300, reasoning=100)) == pytest.approx(0.00095)

    def test_only_one_token_price_configured_prices_the_other_side_at_zero(self):
        assert Pricing(input_per_mtok=0.25).call_cost(response(inp=2_000_000, out=5)) == pytest.approx(0.5)

    def test_gpu_hour_price_spread_over_the_tokens_at_the_measured_throughput(self):
        # $3.60 per hour is $0.001 per second; 250 tokens at 100 tokens/s take 2.5 s, whatever the latency said
        pricing = Pricing(gpu_hour_usd=3.6, throughput_tok_s=100.0)
        assert pricing.call_cost(response(latency=99.0, out=250)) == pytest.approx(0.0025)
        assert "100 output tokens/s calibrated" in pricing.basis

    def test_gpu_hour_without_a_measured_throughput_is_unpriced_never_the_latency(self):
        pricing = Pricing(gpu_hour_usd=3.6)
        assert pricing.call_cost(response(cost=0.01, latency=2.0, out=10)) is None
        assert "not measured in this run" in pricing.basis

    def test_unpriced(self):
        assert Pricing().call_cost(response()) is None
        assert Pricing().call_cost(None) is None

    def test_mean_cost_is_none_when_any_call_is_unpriced(self):
        assert Pricing().mean_cost([response(cost=0.01), response(cost=0.03)]) == pytest.approx(0.02)
        assert Pricing().mean_cost([response(cost=0.01), response()]) is None
        assert Pricing().mean_cost([]) is None


def test_break_even():
    assert break_even_months(1560.0, 404.0) == pytest.approx(3.861386, abs=1e-6)
    assert break_even_months(0.0, 10.0) == 0.0
    assert break_even_months(100.0, 0.0) is None
    assert break_even_months(100.0, -5.0) is None
    assert break_even_months(100.0, None) is None


def case(contract, case_id, candidate, golden_costs, output, flip=None, exceeded=()):
    golden = [response(cost=c) for c in golden_costs]
    return CaseResult(contract=contract, case_id=case_id, candidate=candidate, variables={}, prompt="p",
                      golden=golden, golden_passes=len(golden) if flip == "regression" else 0, output=output,
                      flip=flip, exceeded=list(exceeded))


@pytest.fixture
def run() -> RunResults:
    """Contracts A (100k calls/month), B (20k) and C (no volume); candidates priced three different ways."""
    cheap_prices = Prices(input_per_mtok=0.5, output_per_mtok=1.5)
    cheap = response(cost=0.5, inp=1000, out=200)  # configured prices: $0.0008 per call, not the recorded $0.5
    cases = []
    for name, outputs in {
        "cheap": {"a1": cheap, "a2": cheap, "b1": cheap, "c1": cheap},
        # 100 tokens/s measured in this run: 200 tokens take 2 s, 400 take 4 s, 2,000 take 20 s
        "gpu": {"a1": response(out=200, latency=9.0), "a2": response(out=400, latency=0.1),
                "b1": response(out=2000, latency=1.0), "c1": response(out=100)},
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
                    ModelInfo("gpu", "hf:./q", "hf", prices=Prices(gpu_hour_usd=3.6), throughput_tok_s=100.0),
                    ModelInfo("free", "hf:./f", "hf")],
        contracts=[ContractInfo("A", rework_hours=3, calls_per_month=100_000),
                   ContractInfo("B", rework_hours=5, calls_per_month=20_000),
                   ContractInfo("C", rework_hours=8, calls_per_month=None)],
        cases=cases, settings={"hourly_rate": 120.0})


def costs(run, settings=None):
    return switching_cost(run, Settings.from_mapping(run.settings if settings is None else settings))


def test_switching_cost_of_a_cheaper_candidate_to_the_cent(run):
    s = costs(run)["cheap"]
    # incumbent: A = mean(0.002, 0.004, 0.003) = $0.003 x 100k = $300; B = $0.01 x 20k = $200
    assert round(s.incumbent_monthly_usd, 2) == 500.00
    # candidate: $0.0008 per call x 120k calls
    assert round(s.candidate_monthly_usd, 2) == 96.00
    assert round(s.monthly_saving_usd, 2) == 404.00
    assert round(s.monthly_delta_usd, 2) == -404.00
    # B and C regressed: (5 + 8) h x $120; C counts for rework although it has no monthly volume
    assert s.rework_contracts == ("B", "C")
    assert s.rework_hours == 13
    assert round(s.rework_usd, 2) == 1560.00
    assert s.break_even_months == pytest.approx(1560 / 404)
    assert s.never_breaks_even is False
    assert round(s.cost_per_1k_calls, 2) == 0.80
    assert asdict(s.contracts["A"]) == {
        "calls_per_month": 100_000, "incumbent_cost_per_call": pytest.approx(0.003),
        "candidate_cost_per_call": pytest.approx(0.0008), "incumbent_monthly_usd": pytest.approx(300.0),
        "candidate_monthly_usd": pytest.approx(80.0), "regressions": 0, "exceeded": 0, "needs_rework": False,
        "rework_usd": 0.0, "adapted": False}
    assert s.contracts["C"].incumbent_monthly_usd is None and s.unpriced_contracts == ()


def test_switching_cost_of_a_dearer_gpu_candidate_never_breaks_even(run):
    s = costs(run)["gpu"]
    # $3.60/h = $0.001/s at 100 tokens/s: A = mean(2 s, 4 s) -> $0.003 x 100k = $300; B = 20 s -> $0.02 x 20k = $400
    assert round(s.candidate_monthly_usd, 2) == 700.00
    assert round(s.monthly_delta_usd, 2) == 200.00
    assert s.rework_contracts == ("A",) and round(s.rework_usd, 2) == 360.00  # A exceeded tolerance
    assert s.break_even_months is None and s.never_breaks_even is True


def test_unpriced_candidate_has_unknown_monthly_cost_not_zero(run):
    s = costs(run)["free"]
    assert s.candidate_monthly_usd is None and s.incumbent_monthly_usd is None
    assert s.unpriced_contracts == ("A", "B")  # C has no volume, so it is not missing a price
    assert s.unpriced_reason.startswith("the candidate free has no configured price: set input_per_mtok")
    assert s.break_even_months is None and s.never_breaks_even is False
    assert s.rework_usd == 0.0 and s.cost_per_1k_calls is None


def test_hourly_rate_defaults_to_100(run):
    assert costs(run, {})["cheap"].rework_usd == pytest.approx(1300.0)


def test_a_gpu_hour_incumbent_not_measured_in_this_run_is_unpriced_and_says_how_to_fix_it(run):
    run.incumbent = ModelInfo("inc", "hf:./teacher", "hf", prices=Prices(gpu_hour_usd=0.4))
    s = costs(run)["cheap"]
    assert s.incumbent_monthly_usd is None and s.unpriced_contracts == ("A", "B")
    assert s.unpriced_reason == ("the incumbent inc is priced per GPU hour, but its throughput was not measured in "
                                 "this run (pass --incumbent-model inc so it is measured)")
