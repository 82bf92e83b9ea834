"""Scores one candidate response against a golden and judges it against the contract's tolerance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..contract import Tolerance
from ..types import Response
from . import structured, text

# Metrics that grow with similarity (tolerance is a floor); the rest are distances (tolerance is a ceiling).
HIGHER_IS_BETTER = frozenset({"exact", "edit", "semantic", "fields", "top1"})


@dataclass
class Drift:
    """Per-case metric values, notes on metrics that could not be scored, and tolerance violations."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)


def score(golden: Response, candidate: Response, *, json_output: bool,
          extra: dict[str, Callable[[Response, Response], float | None]] | None = None) -> Drift:
    """Text metrics always, JSON-field agreement for JSON contracts, plus any ``extra`` metric scorers."""
    drift = Drift(metrics={"exact": text.exact(golden.text, candidate.text),
                           "edit": text.edit_similarity(golden.text, candidate.text)})
    if json_output:
        g, c = structured.parse_json(golden.text), structured.parse_json(candidate.text)
        if g is structured.MISSING:
            drift.metrics["fields"] = None
            drift.notes["fields"] = "golden is not JSON"
        else:
            drift.metrics["fields"] = 0.0 if c is structured.MISSING else structured.field_agreement(g, c)
    for name, scorer in (extra or {}).items():
        drift.metrics[name] = scorer(golden, candidate)
    return drift


def judge(drift: Drift, tolerance: Tolerance, golden: Response, candidate: Response) -> list[str]:
    """Lines saying where ``drift`` is beyond ``tolerance`` (empty when within)."""
    problems = []
    for name in tolerance.metrics:
        limit = getattr(tolerance, "field_agreement" if name == "fields" else name)
        value = drift.metrics.get(name)
        if value is None:
            reason = drift.notes.get(name, "not scored")
            problems.append(f"{name}: tolerance set but the metric is not available ({reason})")
        elif name in HIGHER_IS_BETTER and value < limit:
            problems.append(f"{name} {value:.3f} < {limit}")
        elif name not in HIGHER_IS_BETTER and value > limit:
            problems.append(f"{name} {value:.3f} > {limit}")
    if tolerance.fields:
        g, c = structured.parse_json(golden.text), structured.parse_json(candidate.text)
        if c is structured.MISSING:
            problems.append("named fields: candidate output is not JSON")
        else:
            problems.extend(structured.named_field_mismatches(g, c, tolerance.fields))
    return problems
