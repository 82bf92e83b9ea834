"""Contracts without a prompt: the test body runs the application, whose LLM calls are intercepted.

Record sends each call to the incumbent, replay answers it from the golden (offline), a candidate run routes it
to the candidate. The value the test returns is what is recorded and scored, as a :class:`Response` whose text is
the value (JSON for ``output="json"``) and whose usage, latency and cost are summed over the case's calls.
See docs/app-calls.md.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import (Answer, CallRecord, Candidate, InterceptError, Record, Replay, intercept, summarize,
                        tool_call_agreement)
from ..models.base import empty_answer_message
from ..models.cache import ResponseCache
from ..types import ModelCallError, Response, Sample, Usage, redact


@dataclass
class AppRun:
    """One run of a test body: the value it returned, the calls it made, and how it ended.

    ``failure`` is what the body raised (a failed check, or a replay mismatch); ``call_error`` a model call that
    failed (after the backend's retries, or an empty answer): then the case has no answer to judge.
    """

    value: Any = None
    calls: list[CallRecord] = field(default_factory=list)
    failure: BaseException | None = None
    call_error: str | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None and self.call_error is None


def _answered(response: dict[str, Any]) -> bool:
    """Whether a call's response carries an answer: text or a tool call (anything else is an empty answer)."""
    return bool(response.get("text") or response.get("tool_calls"))


def _error_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception (the line kept as a case's ``call_error``)."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Guarded:
    """An answer function that remembers its failures, so a failed call is never mistaken for a failed check."""

    def __init__(self, answer: Answer, model: str, allow_empty: bool) -> None:
        self.answer, self.model, self.allow_empty = answer, model, allow_empty
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.answer(request)
        except Exception as exc:
            # A backend's error is its own one line (model, attempts); anything else gets the model's name.
            line = str(exc) if isinstance(exc, ModelCallError) else f"{self.model}: {_error_line(exc)}"
            with self._lock:
                self.errors.append(redact(line))
            raise
        if not self.allow_empty and not _answered(response):
            message = empty_answer_message(self.model, "no text and no tool call")
            with self._lock:
                self.errors.append(message)
            raise ModelCallError(message)
        return response


@dataclass(frozen=True)
class StoredCalls:
    """An application's calls in the response store, by who answers them (``identity``), sample and request.

    Each answer is kept as it arrives, so a run killed before its goldens are written calls nothing again for
    what was answered. A failed or empty answer is never kept; ``this_run_only`` ignores earlier runs' answers
    (``--llmswap-record all``).
    """

    store: ResponseCache
    identity: str
    sample: int = 0
    this_run_only: bool = False

    def _key(self, request: dict[str, Any]) -> str:
        text = json.dumps([self.identity, self.sample, request], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:
        return self.store.get_data(self._key(request), this_run_only=self.this_run_only)

    def put(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        if _answered(response):
            self.store.put_data(self._key(request), response)


def stored(answer: Answer, calls: StoredCalls | None) -> Answer:
    """``answer``, first looking each request up in ``calls`` and keeping each new answer there."""
    if calls is None:
        return answer

    def call(request: dict[str, Any]) -> dict[str, Any]:
        found = calls.get(request)
        if found is None:
            found = answer(request)
            calls.put(request, found)
        return found

    return call


def run_app(fn: Callable[..., Any], kwargs: dict[str, Any], handler: Record | Replay | Candidate,
            guard: _Guarded | None = None) -> AppRun:
    """Run the test body under interception with ``handler``; never raises for the body's own failures."""
    run = AppRun()
    try:
        with intercept(handler) as session:
            try:
                run.value = fn(**kwargs)
            finally:
                run.calls = session.calls
    except (Exception, pytest.fail.Exception) as exc:
        run.failure = exc
    if guard is not None and guard.errors:
        run.call_error = guard.errors[0]
    return run


def record(fn: Callable[..., Any], kwargs: dict[str, Any], incumbent: Answer | None, model: str,
           allow_empty: bool, calls: StoredCalls | None = None) -> AppRun:
    """Record: each call goes to ``incumbent`` (or, without one, to the model the application asked for);
    ``calls`` keeps the answers as they arrive and answers again what it holds."""
    guard = _Guarded(stored(incumbent, calls), model, allow_empty) if incumbent is not None else None
    run = run_app(fn, kwargs, Record(guard, kept=None if incumbent is not None else calls), guard)
    if guard is None:
        run.call_error = _failed_passthrough_call(run, allow_empty)
    return run


def _failed_passthrough_call(run: AppRun, allow_empty: bool) -> str | None:
    """The first call that failed or came back empty when the application's own client made it.

    No answer function stands between the application and its client here: a call that raised (or whose
    stream broke off) is a call without a response, an empty answer a response without text or tool call;
    either would otherwise become a golden.
    """
    for call in run.calls:
        model = str(call.request.get("model") or "the application's model")
        if not call.response:
            if isinstance(run.failure, Exception) and not isinstance(run.failure, AssertionError):
                return redact(f"{model}: the call failed: {_error_line(run.failure)}")
            return f"{model}: the call failed (the application caught the error)"
        if not allow_empty and not _answered(call.response):
            return empty_answer_message(model, "no text and no tool call")
    return None


def replay(fn: Callable[..., Any], kwargs: dict[str, Any], sample: Sample, record_command: str) -> AppRun:
    """Replay: every call is answered from the golden sample's calls, offline, checked against its request."""
    return run_app(fn, kwargs, Replay(list(sample.calls or ()), record_command))


def candidate(fn: Callable[..., Any], kwargs: dict[str, Any], answer: Answer, model: str,
              allow_empty: bool) -> AppRun:
    """Candidate: every call is routed to the candidate's answer function."""
    guard = _Guarded(answer, model, allow_empty)
    return run_app(fn, kwargs, Candidate(guard), guard)


def value_text(value: Any, output: str) -> str:
    """The returned value as the text drift is scored on: a string as is, anything else as sorted JSON."""
    if isinstance(value, str) and output != "json":
        return value
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the test returned a {type(value).__name__}, which is not JSON-serialisable ({exc}); "
                        "return a str, dict, list or number") from None


def sample(run: AppRun, output: str, passed: bool | None = None) -> Sample:
    """The golden sample (with ``passed``, its checks) or candidate output of one run: its text is the returned
    value, its usage, latency and cost summed over the ``calls`` the application made."""
    summary = summarize(run.calls)
    models = sorted({str(c.response.get("model") or c.request.get("model") or "") for c in run.calls} - {""})
    response = Response(text=value_text(run.value, output), model=", ".join(models),
                        usage=Usage(summary["input_tokens"], summary["output_tokens"]),
                        latency_s=summary["latency_s"], cost_usd=summary["cost_usd"])
    return Sample.of(response, passed=passed, calls=tuple(run.calls))


def calls_note(run: AppRun) -> str:
    """The case's calls in one line for the report."""
    s = summarize(run.calls)
    cost = "" if s["cost_usd"] is None else f", ${s['cost_usd']:.6f}"
    tools = f", {s['tool_calls']} tool call(s)" if s["tool_calls"] else ""
    return (f"{s['calls']} call(s), {s['input_tokens']} + {s['output_tokens']} tokens, {s['latency_s']:.2f} s"
            f"{cost}{tools}")


def first_prompt(run: AppRun) -> str:
    """The last message of the application's first call: the prompt the report shows for the case."""
    messages = run.calls[0].request.get("messages") if run.calls else None
    content = messages[-1].get("content") if messages else ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def is_mismatch(exc: BaseException | None) -> bool:
    """A replay that could not answer the application: the golden must be re-recorded, not the model blamed."""
    return isinstance(exc, InterceptError)


def tool_scorer(golden: Sample, run: AppRun) -> Callable[[Response], tuple[dict[str, float | None],
                                                                                 dict[str, str]]]:
    """The ``tools`` metric: agreement of the candidate's tool calls with the golden's, call by call.

    Not scored (absent) when neither side called a tool, so a suite without tools shows no such metric.
    """

    def score(_: Response) -> tuple[dict[str, float | None], dict[str, str]]:
        golden_calls = golden.calls or ()
        if not any(c.response.get("tool_calls") for c in golden_calls) and not any(
                c.response.get("tool_calls") for c in run.calls):
            return {}, {}
        return {"tools": tool_call_agreement(golden_calls, run.calls)}, {}

    return score
