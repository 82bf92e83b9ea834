"""The registry of drift metrics: each metric's name, tolerance key, direction, scorer and place in the reports.

Tolerances, the judge and the reports read this one table, so a new metric is one module that calls
:func:`register_metric` (docs/extending.md): its values then appear in every case's scores, its tolerance key
in ``llm_contract(tolerance=...)``, and a case beyond it is broken like any other. Scorers import their
libraries when first called: this module is loaded with the plugin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..types import Response

#: Scores a candidate's answer against the K golden samples of its case; None when it cannot be scored.
Scorer = Callable[[Sequence[Response], Response], float | None]


@dataclass(frozen=True)
class Metric:
    """One drift metric.

    ``name`` keys the metric in a case's scores and the reports; ``tolerance_key`` in ``tolerance=`` (a floor
    when ``higher_is_better``, else a ceiling). ``scorer`` scores every answered case; None for the built-in
    metrics scored elsewhere (edit and semantic with their noise floors and named fields in :mod:`.judge`, kl
    and top1 from teacher-forced log-probs, tools from an application's calls). ``local_only``: only a local
    model gives it, so its tolerance does not apply (n/a) where it cannot be measured. ``rank`` orders the
    reports' metric columns. ``similarity`` marks how close an answer is to its golden, preferred in that order
    where a case has several: the reports put the furthest drift first by it (:func:`similarity`).
    """

    name: str
    tolerance_key: str
    higher_is_better: bool
    scorer: Scorer | None = None
    local_only: bool = False
    rank: int = 0
    similarity: int | None = None


#: Tolerance keys that are not metrics (see :class:`.tolerance.Tolerance`).
_NOT_METRICS = frozenset({"fields", "invariance", "registered"})


def _exact(golden: Sequence[Response], candidate: Response) -> float:
    from . import text

    return max(text.exact(g.text, candidate.text) for g in golden)


def _style(golden: Sequence[Response], candidate: Response) -> float:
    from . import style

    return style.style_distance(golden[0].text, candidate.text)


def _tokens(golden: Sequence[Response], candidate: Response) -> float | None:
    from . import tokens

    return tokens.token_efficiency(list(golden), candidate).output_ratio


# In the order tolerances are judged (a failure lists its lines in this order); ``rank`` is the reports' order.
_METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("exact", "exact", True, _exact, rank=0),
    Metric("edit", "edit", True, rank=1, similarity=1),
    Metric("semantic", "semantic", True, rank=3, similarity=0),
    Metric("fields", "field_agreement", True, rank=2),
    Metric("top1", "top1", True, local_only=True, rank=7),
    Metric("tools", "tools", True, rank=8),
    Metric("style", "style", False, _style, rank=4),
    Metric("tokens", "tokens", False, _tokens, rank=5),
    Metric("kl", "kl", False, local_only=True, rank=6),
)}


#: The similarity metrics by preference (a registered metric is not one: ``register_metric`` sets none).
_SIMILARITIES = tuple(name for _, name in sorted((m.similarity, m.name) for m in _METRICS.values()
                                                  if m.similarity is not None))


def register_metric(name: str, scorer: Scorer, *, higher_is_better: bool, tolerance_key: str | None = None,
                    local_only: bool = False) -> Metric:
    """Score every answered case with ``scorer`` under ``name`` from now on in this process; returns the metric.

    Its tolerance key is ``tolerance_key`` (default: ``name``), a floor when ``higher_is_better`` else a ceiling;
    the reports show it after the metrics registered before it. Call it from a plugin or conftest, before the
    contracts that set its tolerance are declared.
    """
    key = tolerance_key or name
    taken = {m.name for m in _METRICS.values()} | {m.tolerance_key for m in _METRICS.values()} | _NOT_METRICS
    if name in taken or key in taken:
        raise ValueError(f"a metric or tolerance key {name if name in taken else key!r} is already registered")
    metric = Metric(name, key, higher_is_better, scorer, local_only,
                    rank=max(m.rank for m in _METRICS.values()) + 1)
    _METRICS[name] = metric
    return metric


def metrics() -> tuple[Metric, ...]:
    """Every metric, in the order tolerances are judged."""
    return tuple(_METRICS.values())


def similarity(scores: Mapping[str, float | None]) -> float | None:
    """How close an answer is to its golden: the first similarity metric (by preference) it was scored on."""
    return next((scores[name] for name in _SIMILARITIES if scores.get(name) is not None), None)


def report_order(names: Sequence[str] | set[str]) -> list[str]:
    """``names`` in the reports' order: registered metrics by rank, then any others (``kl_max``) by name."""
    return sorted(names, key=lambda n: (_METRICS[n].rank if n in _METRICS else math.inf, n))
