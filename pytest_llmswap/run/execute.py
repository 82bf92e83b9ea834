"""Executing a plan: call the models for every planned request, then compute what the whole run needs once
(GPU-hour throughput, teacher-forced logit drift, embeddings) before the first item is judged."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from ..models.backends import find
from ..models.cache import ResponseCache
from ..models.throughput_store import ThroughputStore
from .prepare import counting, logit_drifts, semantic_available, semantic_scorer, throughputs
from .progress import Progress
from ..types import ModelCallError, Request, Response
from .plan import semantic_required
from ..golden import GoldenCase
from .keys import ItemKey
from .state import Answers, Plan, RunState


def execute(state: RunState, plan: Plan, progress: Progress | None = None, *,
            only_when_calling: bool = False) -> Answers:
    """Call the models for every request of ``plan``; return their answers and the run's prepared figures.

    ``progress`` counts every answer as it arrives, per model; with ``only_when_calling`` it stays silent
    when the store already holds every answer. With a store, execution holds a lock on it: xdist workers
    plan the same requests, the first one calls the models (and shows its progress) and the others then
    find every answer in the store. Models priced by the GPU hour then get their calibrated throughput
    (:func:`..prepare.throughputs`): stored, or measured side by side and stored.
    """
    recording = [r for k, reqs in plan.requests.items() if k.model is None for r in reqs]
    candidates = [r for k, reqs in plan.requests.items() if k.model is not None for r in reqs]
    for key, pairs in plan.perturbed.items():
        (recording if key.model is None else candidates).extend(r for _, r in pairs)
    candidates.extend(plan.unadapted.values())
    if not recording and not candidates:
        return Answers()
    executor = state.executor
    responses: dict[str, Response | ModelCallError] = {}
    say = progress.note if progress else None  # calibration lines, even when the calls print nothing
    cache = executor.usable_cache()
    lock = cache.lock() if cache else contextlib.nullcontext()
    try:
        with lock:
            fresh = state.options.record == "all"
            if progress and only_when_calling and cache is not None and _all_stored(cache, recording, candidates,
                                                                                    fresh):
                progress = None
            on_answer = counting(progress, recording + candidates) if progress else None
            if recording:
                responses.update(executor.run(recording, fresh=fresh, on_answer=on_answer))
            if candidates:
                responses.update(executor.run(candidates, on_answer=on_answer))
    finally:
        if progress:
            progress.finish()
    return _prepare(state, plan, responses, recording + candidates, say)


def _all_stored(cache: ResponseCache, recording: list[Request], candidates: list[Request], fresh: bool) -> bool:
    """Whether the store answers every request (a recording with ``fresh`` only from this run)."""
    return (cache.holds_all((r.key for r in recording), this_run_only=fresh)
            and cache.holds_all(r.key for r in candidates))


def _semantic_wanted(state: RunState) -> bool:
    setting = state.options.settings.semantic_enabled
    return semantic_available() or semantic_required(state) if setting is None else setting


def _prepare(state: RunState, plan: Plan, responses: dict[str, Response | ModelCallError],
             requests: list[Request], say: Callable[[str], None] | None) -> Answers:
    """Throughput, logit drift and embeddings for the whole run, before the first item."""
    options = state.options
    incumbent = options.incumbent
    specs = [s for s in (incumbent, *options.candidates) if s is not None]
    store = ThroughputStore(options.cache_dir) if options.cache_dir else None
    throughput, warnings = throughputs(state.executor, incumbent, specs, requests, responses,
                                       store=store, recalibrate=options.recalibrate, say=say)
    judged = _answered(state, plan, responses,
                       [(key, reqs[0]) for key, reqs in plan.requests.items() if key.model is not None])
    # Teacher-forced drift scores the answer the item is judged on (asked with an adapted prompt, if any).
    logit_models = {s.name for s in options.candidates if (kind := find(s.kind)) is not None and kind.logits}
    local = [(k, state.candidate(k.model), r.messages, g.responses[0])  # type: ignore[arg-type]
             for k, r, g, _ in judged if k.model in logit_models]
    logits = logit_drifts(state.executor, local, options.cache_dir) if local else {}
    answered = judged + _answered(state, plan, responses, list(plan.unadapted.items()))
    semantic = None
    if answered and _semantic_wanted(state):
        semantic = semantic_scorer(options.settings, options.cache_dir,
                                   [([str(s["text"]) for s in g.samples], a.text) for _, _, g, a in answered])
    return Answers(responses, throughput, logits, semantic, warnings)  # type: ignore[arg-type]


def _answered(state: RunState, plan: Plan, responses: dict[str, Response | ModelCallError],
              asked: list[tuple[ItemKey, Request]]) -> list[tuple[ItemKey, Request, GoldenCase, Response]]:
    """The candidate requests that were answered and have a golden, with both."""
    found = [(key, request, state.golden(key, plan, responses), responses.get(request.key)) for key, request in asked]
    return [(k, r, g, a) for k, r, g, a in found if g is not None and isinstance(a, Response)]
