"""Synthetic run results of any size, for the report's tests and its benchmark (summaries by ``aggregate``)."""

from __future__ import annotations

import random
from dataclasses import replace

from pytest_llmswap.results import CaseResult, ContractInfo, ModelInfo, RunResults
from pytest_llmswap.settings import Settings
from pytest_llmswap.verdict.aggregate import summarize
from pytest_llmswap.types import Prices, Sample, Usage

_WORDS = ("the customer reports a billing error on invoice order account refund shipping delay password reset "
          "login fails since update please escalate to tier two support team priority high low medium").split()


def _response(text: str, model: str, rng: random.Random, cost_usd: float | None, latency: float) -> Sample:
    tokens = len(text.split())
    return Sample(text, model, Usage(input_tokens=40 + tokens, output_tokens=tokens),
                  latency_s=round(latency * rng.uniform(0.6, 1.8), 4), cost_usd=cost_usd, finish_reason="stop")


def _mutate(text: str, rng: random.Random, rate: float) -> str:
    words = text.split()
    for i in range(len(words)):
        if rng.random() < rate:
            words[i] = rng.choice(_WORDS)
    if rng.random() < rate:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_WORDS))
    return " ".join(words)


def synthetic_results(n_cases: int = 200, *, n_contracts: int = 8, seed: int = 0,
                      extra_outputs: dict[tuple[str, str], str] | None = None) -> RunResults:
    """A run with an API incumbent, two API candidates and a GPU-hour-priced local candidate.

    ``n_cases`` counts case rows over all candidates. ``extra_outputs`` maps ``(candidate, case_id)`` to a
    candidate text to force (its checks fail), e.g. hostile markup for escaping tests.
    """
    rng = random.Random(seed)
    incumbent = ModelInfo("gpt-4o", "openai/gpt-4o", "litellm", "gpt-4o-2024-08-06")
    candidates = [
        ModelInfo("haiku", "anthropic/claude-haiku-4-5", "litellm", "claude-haiku-4-5-20251001"),
        ModelInfo("gpt-4o-mini", "openai/gpt-4o-mini", "litellm", "gpt-4o-mini-2024-07-18"),
        ModelInfo("local-int8", "hf:./models/triage?quant=int8", "hf", "./models/triage@int8",
                  prices=Prices(gpu_hour_usd=2.5),
                  throughput_tok_s=400.0),
    ]
    # (cost per call, latency, mutation rate, regression share) per model
    profile = {"haiku": (0.0004, 0.6, 0.08, 0.001), "gpt-4o-mini": (0.00015, 0.5, 0.14, 0.01),
               "local-int8": (None, 0.15, 0.2, 0.08)}
    contracts = [ContractInfo(f"tests/test_suite_{i % 3}.py::test_contract_{i}", "json" if i % 2 else "text",
                              {"semantic": 0.85}, 1.0, rework_hours=2.0 + i % 4,
                              calls_per_month=None if i == n_contracts - 1 else 10_000 * (i + 1))
                 for i in range(n_contracts)]
    extra_outputs = extra_outputs or {}
    cases: list[CaseResult] = []
    per_candidate = max(1, n_cases // len(candidates))
    for index in range(per_candidate):
        contract = contracts[index % n_contracts]
        case_id = f"case-{index:05d}"
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30)))
        golden = [_response(_mutate(text, rng, 0.03 * k), incumbent.resolved_id, rng, 0.0025, 0.9) for k in range(2)]
        golden_passed = rng.random() > 0.04
        golden = [replace(sample, passed=golden_passed) for sample in golden]
        for model in candidates:
            cost, latency, rate, regress = profile[model.name]
            forced = extra_outputs.get((model.name, case_id))
            out_text = forced if forced is not None else _mutate(text, rng, rate)
            candidate_passed = False if forced is not None else (rng.random() > regress if golden_passed
                                                                  else rng.random() < 0.3)
            flip = ("regression" if golden_passed and not candidate_passed else
                    "improvement" if candidate_passed and not golden_passed else None)
            same = out_text == golden[0].text
            edit = 1.0 if same else max(0.0, min(1.0, 1 - rate * rng.uniform(0.2, 2.0)))
            semantic = 1.0 if same else max(0.0, min(1.0, 1 - rate * rng.uniform(0.0, 1.2)))
            exceeded = ["semantic"] if semantic < 0.85 else []
            cases.append(CaseResult(
                contract=contract.id, case_id=case_id, candidate=model.name, variables={"ticket": text[:60]},
                prompt=f"Classify the ticket and answer in JSON.\n\nTicket: {text}", golden=golden,
                output=_response(out_text, model.resolved_id, rng, cost, latency),
                golden_passes=len(golden) if golden_passed else 0,
                candidate_passed=candidate_passed,
                check_message=None if candidate_passed else "AssertionError: category 'other' not in expected set",
                flip=flip, metrics={"exact": float(same), "edit": edit, "semantic": semantic,
                                    "tokens": len(out_text.split()) / max(1, len(text.split()))},
                floors={"edit": 0.8, "semantic": 0.85}, beyond_noise=semantic < 0.85,
                exceeded=["semantic 0.800 < 0.85"] if exceeded else [], exceeded_metrics=exceeded,
                passed=candidate_passed and not exceeded))
    results = RunResults(created_at="2026-05-01T12:00:00+00:00", incumbent=incumbent, candidates=candidates,
                         contracts=contracts, cases=cases, settings=Settings().to_dict())
    results.summaries = summarize(results)
    return results
