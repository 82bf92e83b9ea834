"""Token efficiency and latency: how many tokens a candidate spends relative to the golden, how fast it answers.

``Usage.output_tokens`` is everything the model generated (providers count reasoning tokens inside the
completion tokens); ``reasoning_tokens`` is the part of it spent thinking, 0 when not reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..types import Response


@dataclass(frozen=True)
class TokenEfficiency:
    """Tokens of one case: golden (mean over its samples) and candidate, and their ratios."""

    golden_output_tokens: float
    candidate_output_tokens: float
    output_ratio: float | None  # candidate / golden; None when the golden reports no output tokens
    golden_reasoning_tokens: float
    candidate_reasoning_tokens: float
    reasoning_ratio: float | None  # None unless the golden reports reasoning tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(candidate: float, golden: float) -> float | None:
    return None if golden <= 0 else candidate / golden


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def token_efficiency(golden: Response | Sequence[Response], candidate: Response) -> TokenEfficiency:
    """Output and reasoning tokens of ``candidate`` relative to the golden (one response or its K samples).

    A ratio above 1 means the candidate spends more tokens. The reasoning ratio is ``None`` when the
    golden reports no reasoning tokens (neither model reports them, or only the candidate reasons: the
    raw counts then tell the story).
    """
    samples = [golden] if isinstance(golden, Response) else list(golden)
    if not samples:
        raise ValueError("a golden needs at least one sample")
    g_out = _mean([s.usage.output_tokens for s in samples])
    g_reason = _mean([s.usage.reasoning_tokens for s in samples])
    c_out = float(candidate.usage.output_tokens)
    c_reason = float(candidate.usage.reasoning_tokens)
    return TokenEfficiency(g_out, c_out, _ratio(c_out, g_out), g_reason, c_reason, _ratio(c_reason, g_reason))


def tokens_per_passed_check(responses: Iterable[Response], passed_checks: int) -> float | None:
    """Output tokens a model spent over a suite divided by the checks it passed (lower is better).

    ``None`` when nothing passed: the cost of a passed check is then unbounded, not a number to average.
    """
    total = sum(r.usage.output_tokens for r in responses)
    return None if passed_checks <= 0 else total / passed_checks


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in seconds over the calls that reported a latency."""

    n: int
    p50: float | None
    p95: float | None
    mean: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_summary(latencies: Iterable[float | None]) -> LatencySummary:
    """p50, p95 and mean latency (numpy's linear interpolation), ignoring calls with no latency."""
    x = np.asarray([v for v in latencies if v is not None], dtype=float)
    if x.size == 0:
        return LatencySummary(0, None, None, None)
    p50, p95 = np.percentile(x, [50, 95])
    return LatencySummary(int(x.size), float(p50), float(p95), float(x.mean()))
