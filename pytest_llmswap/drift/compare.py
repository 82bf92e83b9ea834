"""Scores one candidate response against a golden and judges it against the contract's tolerance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..contract import Tolerance
from ..types import Response
from . import noise, structured, style, text, tokens

if TYPE_CHECKING:
    from .semantic import SemanticScorer

# Metrics that grow with similarity (tolerance is a floor); the rest are distances (tolerance is a ceiling).
HIGHER_IS_BETTER = frozenset({"exact", "edit", "semantic", "fields", "top1"})


@dataclass
class Drift:
    """Per-case metric values, noise floors, whether the case drifted beyond noise, and notes."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    floors: dict[str, float | None] = field(default_factory=dict)
    beyond_noise: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)


def score(golden: Sequence[Response], candidate: Response, *, json_output: bool,
          semantic: SemanticScorer | None = None) -> Drift:
    """Score ``candidate`` against the K golden samples of its case.

    Similarities take the closest golden sample and the noise floor is the samples' worst pair
    (:mod:`.noise`), so an answer the incumbent itself could have given is not called drift. The case
    is beyond noise when the primary similarity (semantic when available, else edit) is below its floor.
    """
    texts = [g.text for g in golden]
    first = golden[0]
    drift = Drift()
    drift.metrics["exact"] = max(text.exact(t, candidate.text) for t in texts)
    judged = {"edit": noise.judge(candidate.text, texts, text.edit_similarity)}
    if semantic is not None:
        judged["semantic"] = noise.judge(candidate.text, texts, semantic.similarity)
    for name, verdict in judged.items():
        drift.metrics[name] = verdict.similarity
        drift.floors[name] = verdict.floor
    primary = judged.get("semantic", judged["edit"])
    drift.beyond_noise = primary.beyond_noise
    if primary.message:
        drift.notes["noise"] = primary.message
    if json_output:
        parsed = [structured.parse_json(t) for t in texts]
        c = structured.parse_json(candidate.text)
        if all(p is structured.MISSING for p in parsed):
            drift.metrics["fields"] = None
            drift.notes["fields"] = "golden is not JSON"
        else:
            drift.metrics["fields"] = 0.0 if c is structured.MISSING else max(
                structured.field_agreement(p, c) for p in parsed if p is not structured.MISSING)
    drift.metrics["style"] = style.style_distance(first.text, candidate.text)
    drift.metrics["tokens"] = tokens.token_efficiency(list(golden), candidate).output_ratio
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
