"""Token efficiency and latency summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_llmswap.drift.tokens import latency_summary, token_efficiency, tokens_per_passed_check
from pytest_llmswap.types import Response, Usage


def resp(output: int, reasoning: int = 0, latency: float | None = None) -> Response:
    return Response("x", usage=Usage(input_tokens=10, output_tokens=output, reasoning_tokens=reasoning),
                    latency_s=latency)


def test_output_ratio_against_one_golden() -> None:
    te = token_efficiency(resp(100), resp(150))
    assert te.output_ratio == 1.5
    assert te.reasoning_ratio is None  # neither reports reasoning tokens
    json.dumps(te.to_dict())


def test_golden_samples_are_averaged() -> None:
    te = token_efficiency([resp(80, 20), resp(120, 40)], resp(50, 15))
    assert te.golden_output_tokens == 100.0
    assert te.output_ratio == 0.5
    assert te.golden_reasoning_tokens == 30.0
    assert te.reasoning_ratio == 0.5


def test_reasoning_ratio_unknown_when_only_the_candidate_reasons() -> None:
    te = token_efficiency(resp(100), resp(300, 200))
    assert te.reasoning_ratio is None
    assert te.candidate_reasoning_tokens == 200.0


def test_unreported_golden_tokens_give_no_ratio() -> None:
    assert token_efficiency(resp(0), resp(10)).output_ratio is None
    with pytest.raises(ValueError):
        token_efficiency([], resp(10))


def test_tokens_per_passed_check() -> None:
    assert tokens_per_passed_check([resp(100), resp(300)], 4) == 100.0
    assert tokens_per_passed_check([resp(100)], 0) is None


def test_latency_percentiles_equal_numpy_and_skip_missing() -> None:
    values = [0.2, 1.5, 0.4, None, 0.9, 3.0, 0.3]
    s = latency_summary(values)
    present = [v for v in values if v is not None]
    assert s.n == 6
    assert s.p50 == pytest.approx(np.percentile(present, 50))
    assert s.p95 == pytest.approx(0.25 * 1.5 + 0.75 * 3.0)  # linear interpolation at rank 4.75 of 0..5
    assert s.mean == pytest.approx(sum(present) / 6)
    assert latency_summary([None]).to_dict() == {"n": 0, "p50": None, "p95": None, "mean": None}
