"""The interface every model backend implements, and the rules every backend applies to its answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..types import ModelCallError, ModelSpec, Request, Response

# Told about each answer as soon as it exists: the request's index in the batch, and the answer.
AnswerCallback = Callable[[int, "Response | ModelCallError"], None]


class Backend(Protocol):
    """Answers requests for one model spec.

    ``complete`` receives every request of the session for this model at once, so a backend can batch
    (local models) or run them concurrently (API models). It returns one entry per request, in order:
    a :class:`Response`, or a :class:`ModelCallError` for a request that failed after retries; and it
    passes each entry to ``on_answer`` as soon as it has it, so the caller can persist it at once.
    """

    spec: ModelSpec

    def complete(self, requests: list[Request],
                 on_answer: AnswerCallback | None = None) -> list[Response | ModelCallError]: ...

    def resolved_model_id(self) -> str:
        """The model id as the provider resolved it (a dated version, not an alias) when known."""
        ...


def empty_answer_message(model: str, what: str = 'content ""') -> str:
    """The one line an empty answer fails with."""
    return (f"{model}: the model returned an empty answer ({what}); an empty answer is a failed call, "
            "never a golden; if the contract expects empty output, set allow_empty=True")


def reject_empty(model: str, request: Request, answer: Response | ModelCallError) -> Response | ModelCallError:
    """The empty-answer rule: an empty text is a failed call unless ``request.allow_empty``."""
    if isinstance(answer, Response) and not answer.text and not request.allow_empty:
        return ModelCallError(empty_answer_message(model))
    return answer
