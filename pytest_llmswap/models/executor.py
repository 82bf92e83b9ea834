"""Executes every planned request of a session: the store first, then the models, concurrently.

Each model's batch runs in its own thread (local models share one thread, one model at a time,
so two checkpoints never compete for memory); every answer is persisted the moment it arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..files import OutputWriteError
from ..types import ModelCallError, ModelSpec, Request, Response, redact, secret_values
from .backends import find, kind_of
from .base import Backend
from .cache import ResponseCache

Answer = Response | ModelCallError
OnAnswer = Callable[[Request, Answer], None]


@dataclass(frozen=True)
class ExecutionSettings:
    """How API calls are made: ``concurrency`` calls at once, ``timeout_s`` each, ``retries`` with a backoff that
    starts at ``backoff_s`` and doubles, and at most ``max_wait_s`` seconds in all during which a model's requests
    wait to retry."""

    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5
    max_wait_s: float = 300.0


def make_backend(spec: ModelSpec, settings: ExecutionSettings) -> Backend:
    """The backend for a spec; heavy libraries are imported only here, only for the kinds in use."""
    return kind_of(spec).build(spec, settings)


class Executor:
    """Answers requests, reusing stored responses; keeps one backend per model for the session.

    ``calls`` counts the requests sent to models (store misses). ``store_error`` is the first failure to
    persist an answer (one line naming the store); the run goes on without persisting further answers.
    """

    def __init__(self, cache: ResponseCache | None, settings: ExecutionSettings) -> None:
        self.cache = cache
        self.settings = settings
        self.backends: dict[str, Backend] = {}
        self.calls = 0
        self.store_error: OutputWriteError | None = None
        self._checked = False
        self._lock = threading.RLock()

    def usable_cache(self) -> ResponseCache | None:
        """The store, checked once; one that cannot be written is dropped (its line in ``store_error``), so the
        run goes on calling models without it."""
        with self._lock:
            if self.cache is not None and not self._checked:
                try:
                    self.cache.check()
                except OutputWriteError as exc:
                    self.store_error, self.cache = exc, None
                self._checked = True
            return self.cache

    def backend(self, spec: ModelSpec) -> Backend:
        with self._lock:
            if spec.identity not in self.backends:
                self.backends[spec.identity] = make_backend(spec, self.settings)
            return self.backends[spec.identity]

    def run(self, requests: Iterable[Request], *, fresh: bool = False,
            on_answer: OnAnswer | None = None) -> dict[str, Answer]:
        """Answer every request, keyed by ``Request.key``. ``fresh`` ignores responses stored by earlier runs
        (re-recording). ``on_answer`` is called once per unique request as its answer arrives (stored
        answers first), from any thread, one call at a time."""
        results: dict[str, Answer] = {}
        todo: dict[str, dict[str, Request]] = {}  # per model, the requests to call, by key
        for req in requests:
            key = req.key
            if key in results or key in todo.get(req.model.identity, {}):
                continue
            stored = self.cache.get(key, this_run_only=fresh) if self.cache else None
            if stored is not None:
                results[key] = stored
                if on_answer is not None:
                    on_answer(req, stored)
            else:
                todo.setdefault(req.model.identity, {})[key] = req
        lanes: list[list[list[Request]]] = []
        local: list[list[Request]] = []
        for batch in todo.values():
            unique = list(batch.values())
            kind = find(unique[0].model.kind)  # an unknown kind fails its requests when its backend is made
            if kind is not None and kind.local:
                local.append(unique)
            else:
                lanes.append([unique])
        if local:
            lanes.append(local)
        self._run_lanes(lanes, results, on_answer)
        return results

    def _run_lanes(self, lanes: list[list[list[Request]]], results: dict[str, Answer],
                   on_answer: OnAnswer | None) -> None:
        """Run each lane (its batches one after another) in its own thread; re-raise a lane's crash here."""
        crashes: list[BaseException] = []

        def lane(batches: list[list[Request]]) -> None:
            try:
                for batch in batches:
                    self._run_batch(batch, results, on_answer)
            except BaseException as exc:  # re-raised in the calling thread, which pytest is watching
                crashes.append(exc)

        if len(lanes) == 1:
            lane(lanes[0])
        else:
            # Daemon threads: Ctrl-C ends the run at once; every answer received so far is already stored.
            threads = [threading.Thread(target=lane, args=(b,), daemon=True, name="llmswap-model") for b in lanes]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if crashes:
            raise crashes[0]

    def _run_batch(self, unique: list[Request], results: dict[str, Answer], on_answer: OnAnswer | None) -> None:
        spec = unique[0].model

        def deliver(index: int, answer: Answer) -> None:
            req = unique[index]
            with self._lock:
                if req.key in results:
                    return
                results[req.key] = answer
                self.calls += 1
                if isinstance(answer, Response):
                    self._persist(req.key, answer)
                if on_answer is not None:
                    on_answer(req, answer)

        try:
            answers: list[Any] = self.backend(spec).complete(unique, on_answer=deliver)
        except Exception as exc:  # a backend that cannot start fails its requests, not the session
            error = ModelCallError(redact(f"{spec.name}: {type(exc).__name__}: {exc}".splitlines()[0],
                                          secret_values(spec.param_dict)))
            answers = [error] * len(unique)
        for i, answer in enumerate(answers):  # whatever the backend returned but did not deliver
            deliver(i, answer)

    def _persist(self, key: str, answer: Response) -> None:
        if self.cache is None or self.store_error is not None:
            return
        try:
            self.cache.put(key, answer)
        except OutputWriteError as exc:
            self.store_error = exc
