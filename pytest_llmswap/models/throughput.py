"""Output tokens per second of models priced by the GPU hour, measured side by side in one calibration pass.

Latency recorded per call depends on the machine's load and on how many calls shared it, so it cannot
price a GPU hour. Instead every such model answers the same calibration prompts, in interleaved rounds
after a one-prompt warm-up, and its throughput is output tokens / time of the whole round: concurrent or
batched calls share the time they used, as they share a real GPU. Each round starts with another model.

Each model brings its own clock. A local CPU model is timed by the CPU time of the thread that runs it,
with torch held to that one thread: the time other processes take from the machine is then not counted,
so a calibration under load prices the model as a quiet one does. Models on a GPU or behind a server are
timed by the wall clock (the load that matters there is not this machine's CPU).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from ..types import Request, Response
from .base import Backend

Clock = Callable[[], float]


class Timed(NamedTuple):
    """One model of a calibration: its backend, the prompts it answers and the clock that times it."""

    backend: Backend
    requests: Sequence[Request]
    clock: Clock = time.perf_counter


def measure_throughput(models: Mapping[str, Timed], *, rounds: int = 3,
                       on_round: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """Output tokens per second of each model in each round that produced a token (empty when none did).

    ``on_round(done, rounds)`` is called after each round, for progress.
    """
    samples: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for model in models.values():
        model.backend.complete(list(model.requests[:1]))  # a warm-up: lazy loads and first-call caches, not timed
    with _one_torch_thread(any(m.clock is time.thread_time for m in models.values())):
        for round_ in range(1, rounds + 1):
            # Each round starts with another model, so a burst of load on the machine falls on each in turn.
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                backend, requests, clock = models[name]
                start = clock()
                answers = backend.complete(list(requests))
                spent = clock() - start
                produced = sum(a.usage.output_tokens for a in answers if isinstance(a, Response))
                if produced and spent > 0:
                    samples[name].append(produced / spent)
            if on_round is not None:
                on_round(round_, rounds)
    return samples


@contextmanager
def _one_torch_thread(wanted: bool) -> Iterator[None]:
    """Hold torch to the calling thread while a thread's CPU time is the clock (work on other threads would
    go uncounted). torch is only touched when loaded: the warm-up loaded every local model."""
    torch = sys.modules.get("torch") if wanted else None
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
