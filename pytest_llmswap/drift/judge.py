"""Judging one item: the contract's checks on the golden samples and on the candidate, drift, flips, tolerance.

Pure of pytest and of the contract: the checks arrive as a callable, so deepeval metrics or the user's
assertions are all the same here. A case's golden is its K samples: similarities take the closest sample,
named fields accept any value the incumbent gave, and the flip weighs how often the incumbent passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..types import Response
from . import noise, structured, text
from .metrics import metrics
from .tolerance import Tolerance

if TYPE_CHECKING:
    from .semantic import SemanticScorer


@dataclass(frozen=True)
class CheckOutcome:
    """The contract's checks on one answer: the failure (None when they passed) and any metric scores."""

    failure: BaseException | None = None
    scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.failure is None


#: Runs the contract's checks on ``output``, with ``golden`` as the reference answer.
Check = Callable[[Response, Response], CheckOutcome]
#: A metric scored apart from the texts (teacher-forced logit drift, tool-call agreement), given the golden:
#: metric name -> value, plus notes.
ExtraScorer = Callable[[Response], tuple[dict[str, float | None], dict[str, str]]]


@dataclass
class Drift:
    """Per-case metric values, noise floors, whether the case drifted beyond noise, and notes."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    floors: dict[str, float | None] = field(default_factory=dict)
    beyond_noise: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """One candidate item, judged: checks, flip, drift and the tolerance lines it broke."""

    candidate: CheckOutcome
    flip: str | None
    drift: Drift
    exceeded: list[str]
    exceeded_metrics: list[str]


def check_goldens(check: Check, goldens: Sequence[Response]) -> list[CheckOutcome]:
    """The checks on each of the K golden samples (each sample is its own reference)."""
    return [check(g, g) for g in goldens]


def flip(golden_passes: int, samples: int, candidate_passed: bool) -> str | None:
    """``regression`` when the candidate fails where the incumbent passed at least one sample,
    ``improvement`` when it passes where the incumbent failed at least one, else None."""
    if not candidate_passed and golden_passes > 0:
        return "regression"
    if candidate_passed and golden_passes < samples:
        return "improvement"
    return None


def judge_candidate(check: Check, goldens: Sequence[Response], golden_passes: int, answer: Response, *,
                    tolerance: Tolerance, json_output: bool, semantic: SemanticScorer | None = None,
                    extra: Sequence[ExtraScorer] = ()) -> Judgement:
    """Check ``answer``, score its drift against the K ``goldens`` and judge it against ``tolerance``."""
    outcome = check(answer, goldens[0])
    drift = score(goldens, answer, json_output=json_output, semantic=semantic)
    drift.metrics.update(outcome.scores)
    for scorer in extra:
        values, notes = scorer(goldens[0])
        drift.metrics.update(values)
        drift.notes.update(notes)
    exceeded, names = beyond_tolerance(drift, tolerance, goldens, answer)
    return Judgement(outcome, flip(golden_passes, len(goldens), outcome.passed), drift, exceeded, names)


def score(golden: Sequence[Response], candidate: Response, *, json_output: bool,
          semantic: SemanticScorer | None = None) -> Drift:
    """Score ``candidate`` against the K golden samples of its case.

    Similarities take the closest golden sample and the noise floor is the samples' worst pair
    (:mod:`.noise`), so an answer the incumbent itself could have given is not called drift. The case
    is beyond noise when the primary similarity (semantic when available, else edit) is below its floor.
    Every metric with a scorer in :mod:`.metrics` (exact, style, tokens, registered ones) scores it too.
    """
    texts = [g.text for g in golden]
    drift = Drift()
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
        parsed = [p for p in map(structured.parse_json, texts) if p is not structured.MISSING]
        c = structured.parse_json(candidate.text)
        if not parsed:
            drift.metrics["fields"] = None
            drift.notes["fields"] = "golden is not JSON"
        else:
            drift.metrics["fields"] = 0.0 if c is structured.MISSING else max(
                structured.field_agreement(p, c) for p in parsed)
    for metric in metrics():
        if metric.scorer is not None:
            drift.metrics[metric.name] = metric.scorer(golden, candidate)
    return drift


def beyond_tolerance(drift: Drift, tolerance: Tolerance, goldens: Sequence[Response],
                     candidate: Response) -> tuple[list[str], list[str]]:
    """Lines saying where ``drift`` is beyond ``tolerance``, and the metric names involved (empty when within).

    A local-only metric (kl, top1) that could not be measured is kept as None with an "n/a" note: its
    tolerance does not apply and the other tolerances judge the case.
    """
    problems: list[str] = []
    names: list[str] = []
    for metric, limit in tolerance.limits():
        name, higher = metric.name, metric.higher_is_better
        value = drift.metrics.get(name)
        if value is None and metric.local_only:
            drift.metrics[name] = None
            drift.notes[name] = "n/a: " + drift.notes.get(name, "API and served models give no log-probs")
            continue
        if value is None:
            reason = drift.notes.get(name, "not scored")
            problems.append(f"{name}: tolerance set but the metric is not available ({reason})")
        elif (value < limit) if higher else (value > limit):
            problems.append(f"{name} {_shown(value, limit)} {'<' if higher else '>'} {limit}")
        else:
            continue
        names.append(name)
    if tolerance.fields:
        parsed = [structured.parse_json(g.text) for g in goldens]
        c = structured.parse_json(candidate.text)
        lines = (["named fields: candidate output is not JSON"] if c is structured.MISSING
                 else structured.named_field_mismatches(parsed, c, tolerance.fields))
        problems.extend(lines)
        if lines:
            names.append("fields")
    return problems, names


def _shown(value: float, limit: float) -> str:
    """``value`` with 3 decimals, or with more digits where 3 decimals would hide that it is past ``limit``
    (a KL of 9e-05 against 1e-06 is not "0.000 > 1e-06")."""
    for shown in (f"{value:.3f}", f"{value:.3g}", f"{value:.6g}"):
        if float(shown) != limit and (float(shown) < limit) == (value < limit):
            return shown
    return repr(value)
