"""Who answers an intercepted call: the real incumbent (record), the recording (replay), or a candidate.

An *answer function* takes a plain request dict (:func:`~.wire.make_request`) and returns a response dict
(``text``, ``tool_calls``, ``usage``, ``finish_reason``, ``model``, ``latency_s``, ``cost_usd``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..models.backends import kind_of
from ..types import ModelCallError, ModelSpec, Request
from .records import CallRecord
from .wire import match_key, describe_difference, response_from_wire

if TYPE_CHECKING:
    from ..models.base import Backend
    from ..models.executor import ExecutionSettings
    from ..models.litellm_backend import LiteLLMBackend

Answer = Callable[[dict[str, Any]], dict[str, Any]]
DEFAULT_RECORD_COMMAND = "pytest --llmswap-record all"


class InterceptError(Exception):
    """An application call that cannot be answered under interception; its text is one line."""


class ReplayMismatch(InterceptError):
    """A call the recording does not hold, or whose request changed since it was recorded."""


class Kept(Protocol):
    """Responses kept as they arrive (the response store), so a rerun after a kill does not call again."""

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None: ...

    def put(self, request: dict[str, Any], response: dict[str, Any]) -> None: ...


class Record:
    """Record: each call goes to ``incumbent`` (an answer function), or, without one, where the app sent it.

    ``kept`` serves the second case: a call the store already answers is not sent, and each answer is kept as
    it arrives (an incumbent's answer function is wrapped by its caller instead).
    """

    def __init__(self, incumbent: Answer | None = None, kept: Kept | None = None) -> None:
        self.incumbent = incumbent
        self.kept = kept


class Candidate:
    """Candidate: each call is answered by ``answer`` (see :func:`candidate_answer`)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer


class Replay:
    """Replay: each call is answered from ``records``, offline, checked against the recorded request.

    Calls are matched in order; a call made from another thread may take a later record whose request is
    equal, so applications that fan out calls replay too. ``record_command`` is quoted in every mismatch.
    """

    def __init__(self, records: Sequence[CallRecord], record_command: str = DEFAULT_RECORD_COMMAND) -> None:
        self.records = list(records)
        self.record_command = record_command
        self._used = [False] * len(self.records)
        self._count = 0
        self._lock = threading.Lock()

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        key = match_key(request)
        with self._lock:
            self._count += 1
            index = self._count
            free = [i for i, used in enumerate(self._used) if not used]
            same = next((i for i in free if match_key(self.records[i].request) == key), None)
            if same is not None:
                self._used[same] = True
                return dict(self.records[same].response)
        name = f"call {index} ({request.get('model', '?')})"
        if not free:
            raise ReplayMismatch(f"{name} was not recorded: the recording has {len(self.records)} call(s); "
                                 f"re-record with: {self.record_command}")
        what = describe_difference(match_key(self.records[free[0]].request), key)
        raise ReplayMismatch(f"{name} does not match the recording: {what}; re-record with: {self.record_command}")

    def finish(self) -> None:
        """Raise when the application made fewer calls than were recorded (its chain changed)."""
        left = self._used.count(False)
        if left:
            raise ReplayMismatch(f"the application made {self._count} call(s), the recording has "
                                 f"{len(self.records)}: {left} recorded call(s) unused; re-record with: "
                                 f"{self.record_command}")


Handler = Record | Replay | Candidate


def litellm_answer(backend: LiteLLMBackend, allow_empty: bool = False) -> Answer:
    """An answer function calling ``backend``'s model through litellm with the app's messages, tools and response
    format, retried as a batch's calls are (empty answers too, unless ``allow_empty``).

    The spec's configured parameters win over the application's (a candidate's settings are deliberate).
    """

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {k: request[k] for k in ("tools", "tool_choice", "response_format") if k in request}
        extra.update(request.get("params") or {})
        start = time.perf_counter()
        raw = backend.call(request["messages"], extra, allow_empty=allow_empty)
        response = response_from_wire(raw.model_dump())
        response["latency_s"] = time.perf_counter() - start
        response["cost_usd"] = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
        return response

    return answer


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    text = content or ""
    if message.get("tool_calls"):
        text += json.dumps([c["function"] for c in message["tool_calls"]])
    return text


def backend_answer(backend: Backend, spec: ModelSpec) -> Answer:
    """An answer function for a local backend (``hf:``, ``echo``): the conversation as plain text.

    Local text models cannot honour ``tools`` or ``response_format``: they answer in text, tool results are
    passed as user messages, and the response carries a ``note`` saying so.
    """

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        messages = tuple(("user" if m["role"] == "tool" else m["role"], _text(m)) for m in request["messages"])
        # Scalar parameters only (temperature, max_tokens, seed...): a Request must stay hashable.
        params = tuple(sorted((k, v) for k, v in (request.get("params") or {}).items()
                              if not isinstance(v, (list, dict))))
        result = backend.complete([Request(model=spec, messages=messages, params=params)])[0]
        if isinstance(result, ModelCallError):
            raise result
        response = result.to_dict()
        response.pop("logprobs", None)
        response["tool_calls"] = []
        ignored = [k for k in ("tools", "response_format") if k in request]
        if ignored:
            response["note"] = f"{spec.name} is a local text model: {' and '.join(ignored)} ignored"
        return response

    return answer


def candidate_answer(spec: ModelSpec, backend: Backend | None = None,
                     settings: ExecutionSettings | None = None, allow_empty: bool = False) -> Answer:
    """The answer function for a model spec: a backend that answers tool calls (litellm) keeps tools and response
    format; the others answer as text. Pass the session's ``backend``, so a local model loads once and a refused key stops every case's
    calls; else a new one is made."""
    from ..models.executor import ExecutionSettings, make_backend

    backend = backend or make_backend(spec, settings or ExecutionSettings())
    if kind_of(spec).tool_calls:
        return litellm_answer(backend, allow_empty)  # type: ignore[arg-type]
    return backend_answer(backend, spec)
