"""Output tokens per second of models priced by the GPU hour, measured side by side in this run.

Latency recorded per call depends on the machine's load and on how many calls shared it, so it cannot
price a GPU hour. Instead every such model answers the same calibration prompts, in interleaved rounds
after a one-prompt warm-up, and its throughput is output tokens / wall time of
the whole round: concurrent or batched calls share the time they used, as they share a real GPU.
Each round starts with another model, and each model keeps its fastest round: load on a shared machine only
ever slows a round down, so the fastest round is the one least disturbed (a median would still carry the
load of a busy machine, and make a small model look dearer than a large one that ran in a quiet moment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ..types import Request, Response
from .base import Backend


def measure_throughput(models: Mapping[str, tuple[Backend, Sequence[Request]]], *, rounds: int = 3,
                       clock: Callable[[], float] = time.perf_counter) -> dict[str, float | None]:
    """Output tokens per second of each model in its fastest round (None when no round produced a token)."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for backend, requests in models.values():
        backend.complete(list(requests[:1]))  # a warm-up: lazy loads and first-call caches, not timed
    for round_ in range(1, rounds + 1):
        # Each round starts with another model, so a burst of load on the machine falls on each in turn.
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            backend, requests = models[name]
            start = clock()
            answers = backend.complete(list(requests))
            wall = clock() - start
            produced = sum(a.usage.output_tokens for a in answers if isinstance(a, Response))
            if produced and wall > 0:
                samples[name].append(produced / wall)
    return {name: max(values) if values else None for name, values in samples.items()}
