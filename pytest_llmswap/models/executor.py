"""Executes every planned request of a session: cache first, then one batched call per model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..cost import call_cost
from ..types import ModelCallError, ModelSpec, Request, Response, redact
from .base import Backend
from .cache import ResponseCache


@dataclass(frozen=True)
class ExecutionSettings:
    """How API calls are made: ``concurrency`` calls at once, ``timeout_s`` each, ``retries`` with backoff."""

    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 3


def make_backend(spec: ModelSpec, settings: ExecutionSettings) -> Backend:
    """The backend for a spec; heavy libraries are imported only here, only for the kinds in use."""
    if spec.kind == "echo":
        from .echo import EchoBackend

        return EchoBackend(spec)
    if spec.kind == "litellm":
        from .litellm_backend import LiteLLMBackend

        return LiteLLMBackend(spec, concurrency=settings.concurrency, timeout_s=settings.timeout_s,
                              retries=settings.retries)
    if spec.kind == "hf":
        from .hf import HFBackend

        return HFBackend(spec)
    raise ValueError(f"no backend for model kind {spec.kind!r}")


class Executor:
    """Answers requests, reusing cached responses; keeps one backend per model for the session."""

    def __init__(self, cache: ResponseCache | None, settings: ExecutionSettings) -> None:
        self.cache = cache
        self.settings = settings
        self.backends: dict[str, Backend] = {}
        self.calls = 0

    def backend(self, spec: ModelSpec) -> Backend:
        if spec.identity not in self.backends:
            self.backends[spec.identity] = make_backend(spec, self.settings)
        return self.backends[spec.identity]

    def run(self, requests: Iterable[Request], *, fresh: bool = False) -> dict[str, Response | ModelCallError]:
        """Answer every request. ``fresh`` ignores responses cached by earlier runs (re-recording)."""
        results: dict[str, Response | ModelCallError] = {}
        todo: dict[str, dict[str, Request]] = defaultdict(dict)  # per model, the requests to call, by key
        for req in requests:
            key = req.key
            if key in results or key in todo[req.model.identity]:
                continue
            cached = self.cache.get(key, this_run_only=fresh) if self.cache else None
            if cached is not None:
                results[key] = cached
            else:
                todo[req.model.identity][key] = req
        for batch in todo.values():
            if not batch:
                continue
            unique = list(batch.values())
            try:
                answers: list[Any] = self.backend(unique[0].model).complete(unique)
            except Exception as exc:  # a backend that cannot start fails its requests, not the session
                answers = [ModelCallError(redact(f"{unique[0].model.name}: {type(exc).__name__}: {exc}"))] * len(unique)
            self.calls += len(unique)
            prices = unique[0].model.prices.__dict__ if unique[0].model.prices else None
            for req, answer in zip(unique, answers):
                if isinstance(answer, Response) and prices:
                    answer = replace(answer, cost_usd=call_cost(answer.to_dict(), prices))
                results[req.key] = answer
                if self.cache is not None and isinstance(answer, Response):
                    self.cache.put(req.key, answer)
        return results
