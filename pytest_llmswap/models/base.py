"""The interface every model backend implements."""

from __future__ import annotations

from typing import Protocol

from ..types import ModelCallError, ModelSpec, Request, Response


class Backend(Protocol):
    """Answers requests for one model spec.

    ``complete`` receives every request of the session for this model at once, so a backend can batch
    (local models) or run them concurrently (API models). It returns one entry per request, in order:
    a :class:`Response`, or a :class:`ModelCallError` for a request that failed after retries.
    """

    spec: ModelSpec

    def complete(self, requests: list[Request]) -> list[Response | ModelCallError]: ...

    def resolved_model_id(self) -> str:
        """The model id as the provider resolved it (a dated version, not an alias) when known."""
        ...
