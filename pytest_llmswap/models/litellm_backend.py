"""API models through litellm: concurrent calls under a bounded semaphore, retries with backoff.

A named model with ``api_bases`` (several deployments) is called through litellm's ``Router``, which picks
a deployment per call and rests one that keeps failing (its cooldown); it is still one model to the plugin,
and the retries stay ours.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import email.utils
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..types import ModelCallError, ModelSpec, Request, Response, Usage, redact, secret_values
from .base import AnswerCallback, empty_answer_message
from . import env
from .spec import ROUTER_KEYS


class EmptyAnswer(Exception):
    """A 200 answer without text (``content`` "" or null, no ``choices``): retried like a 5xx."""


def import_litellm() -> Any:
    """Import litellm quietly (offline: the package's ``__init__`` keeps its price map local)."""
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    logger = logging.getLogger("LiteLLM")
    if not any(isinstance(f, _LoggingWorkerNoise) for f in logger.filters):
        logger.addFilter(_LoggingWorkerNoise())
    return litellm


class _LoggingWorkerNoise(logging.Filter):
    """Drops the log lines (with tracebacks) of litellm's global logging worker. It runs litellm's own success
    callbacks, which llmswap does not use, and is bound to one event loop; each API model's batch runs its own
    loop in its own thread, so with two API models in a run it logged "event loop changed" and "cannot reuse
    already awaited coroutine" tracebacks into the user's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.module != "logging_worker"


def retryable(litellm: Any, exc: BaseException) -> bool:
    """Transient failures, by exception class: rate limits, connection errors and timeouts, 5xx statuses
    (litellm maps resets and malformed bodies onto InternalServerError), and empty answers."""
    import openai

    transient = (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError,
                 litellm.ServiceUnavailableError, litellm.BadGatewayError, EmptyAnswer)
    if isinstance(exc, transient):
        return True
    return isinstance(exc, openai.APIStatusError) and int(getattr(exc, "status_code", 0) or 0) >= 500


def retry_after_s(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` on an error response, in seconds from now, or None when it sent none we can read.

    Seconds or an HTTP date; a date without a zone is UTC (RFC 9110's dates are GMT). Garbage, nan and dates
    out of range are None (the backoff applies); the caller caps what it waits.
    """
    try:
        headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(exc, "litellm_response_headers",
                                                                                       None)
        value = next((str(v) for k, v in dict(headers or {}).items() if str(k).lower() == "retry-after"), None)
    except Exception:  # headers of an unexpected shape: as if the server sent none
        return None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# litellm's Router reads these, passed with a call, as the caller's own credentials: such a call gets a
# deployment of its own, whose failures never cool the shared replica down. Routed, they go in the deployments.
DEPLOYMENT_KEYS = ("api_key", "base_url")
# A replica that fails more than ALLOWED_FAILS calls within COOLDOWN_S seconds rests COOLDOWN_S seconds.
ALLOWED_FAILS = 2
COOLDOWN_S = 30.0


def call_params(spec: ModelSpec) -> dict[str, Any]:
    """The spec's parameters for a completion call: without the Router's keys, which name deployments (nor,
    routed, the deployments' credentials), and with ``os.environ/NAME`` values read from the environment."""
    routed = DEPLOYMENT_KEYS if "api_bases" in spec.param_dict else ()
    return {k: env.resolve(v) for k, v in spec.params if k not in ROUTER_KEYS and k not in routed}


def deployment_params(spec: ModelSpec) -> dict[str, Any]:
    """The credentials every deployment of a routed model carries."""
    return {k: env.resolve(v) for k, v in spec.params if k in DEPLOYMENT_KEYS}


def make_router(litellm: Any, spec: ModelSpec) -> Any | None:
    """litellm's ``Router`` over the spec's ``api_bases`` (one deployment per base), or None for one base.

    The Router makes no retries of its own (``num_retries=0``): each of our attempts is routed afresh, away
    from a replica in cooldown (``allowed_fails``, ``cooldown_time``), so a dead replica stops costing calls.
    """
    params = spec.param_dict
    if "api_bases" not in params:
        return None
    shared = deployment_params(spec)
    deployments = [{"model_name": spec.name,
                    "litellm_params": {"model": spec.target, "api_base": env.resolve(base), **shared}}
                   for base in params["api_bases"]]
    return litellm.Router(model_list=deployments, num_retries=0,
                          routing_strategy=params.get("routing_strategy", "simple-shuffle"),
                          allowed_fails=params.get("allowed_fails", ALLOWED_FAILS),
                          cooldown_time=params.get("cooldown_time", COOLDOWN_S))


def check_spec(spec: ModelSpec) -> None:
    """Fail before any call when litellm does not know the provider, its key is missing or the Router
    cannot be built from the spec's deployments."""
    litellm = import_litellm()
    try:
        litellm.get_llm_provider(spec.target)
    except Exception:
        raise ValueError(f"model {spec.target!r}: litellm knows no provider {spec.target.split('/')[0]!r}; "
                         "see litellm's provider list, or use openai/<model> with api_base for an "
                         "OpenAI-compatible server") from None
    params = spec.param_dict
    unset = env.missing(params)
    if unset:
        where, name = unset[0]
        raise ValueError(f"[tool.llmswap.models.{spec.name}]: {where} = \"os.environ/{name}\" but ${name} is not set; "
                         f"export {name} (in CI, from the secret store) or change {where}")
    try:
        make_router(litellm, spec)
    except Exception as exc:  # an unknown routing_strategy, or a base the Router rejects
        raise ValueError(f"model {spec.name!r}: {_first_line(exc)}") from None
    if params.get("api_key") or params.get("mock_response") is not None:
        return
    api_base = params.get("api_base") or next(iter(params.get("api_bases", ())), None)
    missing = litellm.validate_environment(model=spec.target, api_base=api_base).get("missing_keys")
    if missing:
        raise ValueError(f"model {spec.target!r} needs {', '.join(missing)} in the environment (or api_key in "
                         f"[tool.llmswap.models.<name>])")


class WaitBudget:
    """Bounds the wall-clock time during which at least one request of a model waits to retry (``limit_s``).

    Overlapping waits count once, so the concurrent retries of a rate-limited model spend it together. A wait is
    granted only if it would end within the budget even were nothing else waiting, so the total never passes it.
    """

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._spent = 0.0
        self._waiting = 0
        self._since = 0.0

    def spent(self) -> float:
        return self._spent + (time.monotonic() - self._since if self._waiting else 0.0)

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` and return True, or return False at once when that would pass the budget."""
        if self.spent() + seconds > self.limit_s:
            return False
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._spent += time.monotonic() - self._since
        return True


class LiteLLMBackend:
    """Calls one litellm model for a whole batch of requests at once."""

    def __init__(self, spec: ModelSpec, *, concurrency: int = 8, timeout_s: float = 60.0, retries: int = 3,
                 backoff_s: float = 0.5, max_wait_s: float = 300.0) -> None:
        self.spec = spec
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._resolved: str = ""
        self._waits = WaitBudget(max_wait_s)
        # Set by the first 401/403: every later request of this model fails with it, without a call.
        self._refused: ModelCallError | None = None

    def resolved_model_id(self) -> str:
        return self._resolved or self.spec.target

    def complete(self, requests: list[Request],
                 on_answer: AnswerCallback | None = None) -> list[Response | ModelCallError]:
        return asyncio.run(self._complete_all(requests, on_answer))

    async def _complete_all(self, requests: list[Request],
                            on_answer: AnswerCallback | None) -> list[Response | ModelCallError]:
        litellm = import_litellm()
        gate = asyncio.Semaphore(self.concurrency)
        # A Router per batch: its HTTP clients belong to this batch's event loop (asyncio.run closes it).
        router = make_router(litellm, self.spec)
        if router is None:
            call = functools.partial(litellm.acompletion, model=self.spec.target)
        else:
            call = functools.partial(router.acompletion, model=self.spec.name)

        async def one(index: int, req: Request) -> Response | ModelCallError:
            answer = await self._complete_one(litellm, call, gate, req)
            if on_answer is not None:
                on_answer(index, answer)
            return answer

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    async def _complete_one(self, litellm: Any, call: Callable[..., Awaitable[Any]], gate: asyncio.Semaphore,
                            req: Request) -> Response | ModelCallError:
        kwargs = {**call_params(self.spec), **req.param_dict}
        kwargs.setdefault("timeout", self.timeout_s)
        # Retries are ours (counted, backed off, reported); the provider SDK's own would hide them.
        kwargs.setdefault("max_retries", 0)
        attempt = 0
        while True:
            try:
                async with gate:  # held for the call only: a request waiting to retry leaves its slot to others
                    if self._refused is not None:  # checked in the slot: requests queued behind a refusal
                        return self._refused
                    start = time.perf_counter()
                    raw = await call(messages=req.message_dicts, **kwargs)
                    return self._response(litellm, raw, time.perf_counter() - start, req)
            except Exception as exc:  # litellm maps every provider error onto its exception classes
                if not retryable(litellm, exc) or attempt >= self.retries:
                    return self._error(exc, attempt + 1, kwargs)
                attempt += 1
                if not await self._waits.wait(self._retry_wait(exc, attempt)):
                    return self._error(exc, attempt, kwargs, f" (no retry: this model's retry waits would pass "
                                                             f"--llmswap-max-wait {self._waits.limit_s:g}s)")

    def _retry_wait(self, exc: Exception, attempt: int) -> float:
        """Seconds to wait before retry ``attempt``: the server's ``Retry-After``, else backoff with jitter (so
        concurrent retries spread out); never more than the timeout."""
        wait = retry_after_s(exc)
        if wait is None:
            wait = self.backoff_s * 2 ** (attempt - 1) * (1 + random.random())
        return min(wait, self.timeout_s)

    def call(self, messages: list[dict[str, Any]], extra: dict[str, Any], *, allow_empty: bool = False) -> Any:
        """One synchronous completion for an application's call (its messages, tools, response format, sampling
        parameters in ``extra``; the spec's own parameters win), retried like a batch's calls, empty answers too
        unless ``allow_empty``. Returns litellm's response; raises :class:`ModelCallError` (one redacted line).

        Synchronous, since an application's call is; its retry waits are not counted in ``--llmswap-max-wait``
        (one case's calls wait one after another, each wait capped by the timeout).
        """
        litellm = import_litellm()
        kwargs = {**extra, **call_params(self.spec)}
        kwargs.setdefault("timeout", self.timeout_s)
        kwargs.setdefault("max_retries", 0)  # ours, as in a batch: litellm's num_retries would need tenacity
        attempt = 0
        while True:
            if self._refused is not None:
                raise ModelCallError(str(self._refused))
            try:
                raw = self._complete_sync(litellm, messages, kwargs)
                if not allow_empty and not _has_answer(raw):
                    raise EmptyAnswer("no text and no tool call")
                return raw
            except Exception as exc:  # litellm maps every provider error onto its exception classes
                if not retryable(litellm, exc) or attempt >= self.retries:
                    raise self._error(exc, attempt + 1, kwargs) from None
                attempt += 1
                time.sleep(self._retry_wait(exc, attempt))

    @functools.cached_property
    def _sync_router(self) -> Any | None:
        # One Router per backend for synchronous calls; a batch makes its own, bound to its event loop.
        return make_router(import_litellm(), self.spec)

    def _complete_sync(self, litellm: Any, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
        """A synchronous completion, through the backend's Router when the spec lists ``api_bases``."""
        if self._sync_router is None:
            return litellm.completion(model=self.spec.target, messages=messages, **kwargs)
        return self._sync_router.completion(model=self.spec.name, messages=messages, **kwargs)

    def _error(self, exc: Exception, attempts: int, kwargs: dict[str, Any], why: str = "") -> ModelCallError:
        status = int(getattr(exc, "status_code", 0) or 0)
        secrets = secret_values({**deployment_params(self.spec), **kwargs})
        if status in (401, 403):
            self._refused = ModelCallError(redact(refused_line(self.spec, status, exc), secrets))
            return self._refused
        if isinstance(exc, EmptyAnswer):
            message = f"{empty_answer_message(self.spec.name, str(exc))} (after {attempts} attempt(s)){why}"
        else:
            message = f"{self.spec.name}: {type(exc).__name__} after {attempts} attempt(s){why}: {_first_line(exc)}"
        return ModelCallError(redact(message, secrets))

    def _response(self, litellm: Any, raw: Any, latency: float, req: Request) -> Response:
        choices = getattr(raw, "choices", None)
        if not choices:
            raise EmptyAnswer("no choices")
        choice = choices[0]
        text = getattr(getattr(choice, "message", None), "content", None)
        if not text and not req.allow_empty:
            raise EmptyAnswer('content ""' if text == "" else "content null")
        usage_raw = getattr(raw, "usage", None)
        details = getattr(usage_raw, "completion_tokens_details", None)
        usage = Usage(input_tokens=int(getattr(usage_raw, "prompt_tokens", 0) or 0),
                      output_tokens=int(getattr(usage_raw, "completion_tokens", 0) or 0),
                      reasoning_tokens=int(getattr(details, "reasoning_tokens", 0) or 0))
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=raw))
        except Exception:  # unmapped model: no price rather than a wrong one (configured prices apply later)
            cost = None
        self._resolved = str(getattr(raw, "model", "") or self.spec.target)
        return Response(text=str(text or ""), model=self._resolved, usage=usage, latency_s=latency,
                        cost_usd=cost, finish_reason=getattr(choice, "finish_reason", None))


def refused_line(spec: ModelSpec, status: int, exc: Exception) -> str:
    """The one line of a model whose key the provider refused: model, status, what to set."""
    key = spec.param_dict.get("api_key")
    name = env.env_name(key)
    if name:
        fix = f"set ${name} to a valid key (api_key = \"os.environ/{name}\" in [tool.llmswap.models.{spec.name}])"
    elif key:
        fix = f"set a valid api_key in [tool.llmswap.models.{spec.name}], best as api_key = \"os.environ/NAME\""
    else:
        fix = (f"set a valid key in the provider's variable (e.g. ${spec.target.split('/')[0].upper()}_API_KEY) "
               f"or api_key = \"os.environ/NAME\" in [tool.llmswap.models.{spec.name}]")
    return (f"{spec.name}: the provider refused the key ({status} {type(exc).__name__}): {fix}; no further calls "
            f"to {spec.name} in this run: {_first_line(exc)}")


def _has_answer(raw: Any) -> bool:
    """Whether a completion carries an answer: text or a tool call in its first choice."""
    choices = getattr(raw, "choices", None)
    message = getattr(choices[0], "message", None) if choices else None
    return bool(getattr(message, "content", None) or getattr(message, "tool_calls", None))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
