"""Plain data types shared by every layer: usage, responses, samples, application calls, requests, model specs.

Nothing here imports pytest, litellm, torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

#: The kind of the incumbent's ModelInfo in a replay whose goldens name no model that can be configured: it stands
#: for "whatever recorded the goldens", so no backend may take the name.
GOLDENS_KIND = "golden"

# Parameter names whose values are credentials: never hashed, written or logged.
SECRET_PARAMS = frozenset(
    {"api_key", "api_token", "token", "authorization", "headers", "extra_headers", "aws_access_key_id",
     "aws_secret_access_key", "aws_session_token", "azure_ad_token", "vertex_credentials", "client_secret",
     "password"}
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter or variable name holds a credential (``api_key``, ``headers``, ``GATEWAY_TOKEN``)."""
    return name.lower() in SECRET_PARAMS or bool(_SECRET_ENV.search(name))


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without credentials, safe to store in a golden, cache key or report: credential-named
    parameters dropped, URLs (``api_base``) kept without userinfo and credential query parameters."""
    return {k: strip_url_credentials(v) for k, v in sorted(params.items()) if not is_secret_name(k)}


def strip_url_credentials(value: Any) -> Any:
    """``value`` with the userinfo and credential query parameters of every URL in it masked (recursively).

    A URL without credentials is returned unchanged, so cache keys of such models do not move.
    """
    if isinstance(value, str):
        return _URL_QUERY.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", value)) if "://" in value else value
    if isinstance(value, (list, tuple)):
        return type(value)(strip_url_credentials(v) for v in value)
    if isinstance(value, dict):
        return {k: strip_url_credentials(v) for k, v in value.items()}
    return value


_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$", re.IGNORECASE)
# The whole userinfo of a URL (``https://user:pass@host``, ``https://TOKEN@host``) and credential query values.
_URL_USERINFO = re.compile(r"(://)[^/\s@\"']+@")
_URL_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|key|access[_-]?token|token|sig|signature|secret|password|code|"
                        r"auth|x-amz-security-token|x-amz-signature)=)[^&\s\"'#]+")
# Values of an "<scheme> <token>" header ("Bearer TOKEN", "Basic ...", "Token ..."): the token alone is masked too,
# since a provider may echo it without its scheme.
_SCHEMED = re.compile(r"^\s*[A-Za-z][\w-]*\s+(\S{4,})\s*$")
# Credentials learnt while running (the keys an application passes to its own clients): masked wherever a
# line is redacted, though they are in no configuration and no environment variable.
_known: set[str] = set()
_known_lock = threading.Lock()


def remember_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` in every later :func:`redact` of this process (keys met at run time, e.g. an app's client)."""
    fresh = {v for v in values if len(v) >= 4}
    if fresh - _known:
        with _known_lock:
            _known.update(fresh)


_SECRET_PATTERNS = (
    # A credential header, with or without a scheme: "Authorization: Bearer x", '"x-api-key": "x"'.
    (re.compile(r"(?i)((?:authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key|"
                r"ocp-apim-subscription-key)[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)"
                r"[^\s\"',;&}]{4,}"), r"\1***"),
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1***"),
    # Keys in query strings and the userinfo of URLs.
    (_URL_QUERY, r"\1***"),
    (_URL_USERINFO, r"\1***@"),
)


def secret_values(params: dict[str, Any]) -> tuple[str, ...]:
    """Every credential value in call parameters: credential-named params, each value of a header dict, and
    the token of a value with a scheme (``"Bearer TOKEN"`` gives both ``"Bearer TOKEN"`` and ``"TOKEN"``)."""
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif value is not None and not isinstance(value, bool):
            found.append(str(value))
            scheme = _SCHEMED.match(str(value))
            if scheme:
                found.append(scheme.group(1))

    for name, value in params.items():
        if is_secret_name(name):
            collect(value)
    return tuple(found)


def redact(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every credential masked: ``extra_secrets`` (see :func:`secret_values`), credential
    values from the environment (``*_API_KEY``, ``*_TOKEN``, ...), keys remembered at run time
    (:func:`remember_secrets`), credential headers, keys in query strings and the userinfo of URLs.

    Provider error messages sometimes echo a request; this keeps keys out of reports and logs.
    """
    secrets = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]
    # Explicit credentials are masked even when short; a 1-3 character value would mask ordinary text.
    with _known_lock:
        known = tuple(_known)
    secrets += [s for s in (*extra_secrets, *known) if s and len(s) >= 4]
    for value in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(value, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class OutputFormatError(AssertionError):
    """The model's text is not in the contract's output format (a failed check, not a crash)."""


@dataclass(frozen=True)
class Usage:
    """Token counts of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            reasoning_tokens=int(data.get("reasoning_tokens", 0)),
        )


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the top-k alternatives ``[(token_id, logprob), ...]``."""

    token_id: int
    token: str
    logprob: float
    top: tuple[tuple[int, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # Five decimals keep KL exact to ~1e-5 nats and goldens small enough to review.
        return {"token_id": self.token_id, "token": self.token, "logprob": round(self.logprob, 5),
                "top": [[i, round(lp, 5)] for i, lp in self.top]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenLogprob:
        return cls(int(data["token_id"]), str(data["token"]), float(data["logprob"]),
                   tuple((int(i), float(lp)) for i, lp in data.get("top", ())))


@dataclass(frozen=True)
class Response:
    """One model answer, as the contract's checks see it (fixtures ``output`` and ``golden``)."""

    text: str
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_s: float | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None

    @cached_property
    def json(self) -> Any:
        """The text parsed as JSON; raises :class:`OutputFormatError` (an ``AssertionError``) if it is not."""
        try:
            return json.loads(self.text)
        except (json.JSONDecodeError, TypeError) as exc:
            snippet = self.text if len(self.text) <= 120 else self.text[:117] + "..."
            raise OutputFormatError(f"output of {self.model or 'the model'} is not JSON ({exc.msg} at char "
                                    f"{exc.pos}): {snippet!r}") from None

    @property
    def truncated(self) -> bool:
        """True when generation stopped at the token limit rather than at its own end."""
        return self.finish_reason == "length"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text, "model": self.model,
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens,
                      "reasoning_tokens": self.usage.reasoning_tokens},
            "latency_s": _stored_latency(self.latency_s), "cost_usd": _stored_cost(self.cost_usd),
            "finish_reason": self.finish_reason,
        }
        if self.logprobs is not None:
            data["logprobs"] = [t.to_dict() for t in self.logprobs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        return cls(**cls._fields_of(data))

    @classmethod
    def _fields_of(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The constructor's arguments read from ``data`` (a subclass adds its own, so it is built once)."""
        lps = data.get("logprobs")
        return dict(
            text=str(data["text"]), model=str(data.get("model", "")), usage=Usage.from_dict(data.get("usage")),
            latency_s=data.get("latency_s"), cost_usd=data.get("cost_usd"), finish_reason=data.get("finish_reason"),
            logprobs=None if lps is None else tuple(TokenLogprob.from_dict(t) for t in lps),
        )


_RESPONSE_FIELDS = tuple(f.name for f in fields(Response))


# Milliseconds and six significant digits: what a reviewer reads, and stable in a PR diff.
def _stored_latency(latency_s: float | None) -> float | None:
    return None if latency_s is None else round(latency_s, 4)


def _stored_cost(cost_usd: float | None) -> float | None:
    return None if cost_usd is None else float(f"{cost_usd:.6g}")


@dataclass
class CallRecord:
    """One LLM call an application made (application mode): the plain request and the response it got.

    ``request`` is what :func:`~.intercept.wire.make_request` builds (never credentials); ``response`` has
    ``text``, ``tool_calls``, ``usage``, ``finish_reason``, ``model``, ``latency_s``, ``cost_usd`` and, for a
    stream, ``chunks`` (the text of each chunk) and, for a local model, a ``note`` on what it could not honour.
    """

    request: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "response": self.response}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        return cls(request=dict(data["request"]), response=dict(data.get("response") or {}))


@dataclass(frozen=True)
class Sample(Response):
    """An answer as a case result keeps it: one of the incumbent's golden samples, or the candidate's output.

    ``passed`` is the contract's checks on it (incumbent samples only; None when not run) and ``calls`` the
    calls the application made for it (application mode only). Its figures are held at the precision of the
    results file, so a report read from the file shows what the session showed (and a sample read back equals
    itself); ``to_dict`` is ``Response.to_dict`` with ``calls`` and then ``passed`` when they are set.
    """

    passed: bool | None = None
    calls: tuple[CallRecord, ...] | None = None

    @classmethod
    def of(cls, response: Response, *, passed: bool | None = None,
           calls: tuple[CallRecord, ...] | None = None) -> Sample:
        """``response`` as a result keeps it (latency, cost and log-probs rounded as the file stores them)."""
        kept = {name: getattr(response, name) for name in _RESPONSE_FIELDS}
        lps = response.logprobs
        return cls(**{**kept, "latency_s": _stored_latency(response.latency_s),
                      "cost_usd": _stored_cost(response.cost_usd),
                      "logprobs": None if lps is None else tuple(TokenLogprob.from_dict(t.to_dict()) for t in lps)},
                   passed=passed, calls=calls)

    def to_dict(self, *, logprobs: bool = True) -> dict[str, Any]:
        """The sample in the results file; ``logprobs=False`` leaves its per-token log-probs out."""
        data = super().to_dict()
        if not logprobs:
            data.pop("logprobs", None)
        if self.calls is not None:
            data["calls"] = [c.to_dict() for c in self.calls]
        if self.passed is not None:
            data["passed"] = self.passed
        return data

    @classmethod
    def _fields_of(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A sample of a results or golden file (unknown keys are ignored): ``from_dict`` reads it."""
        calls = data.get("calls")
        return {**super()._fields_of(data), "passed": data.get("passed"),
                "calls": None if calls is None else tuple(CallRecord.from_dict(c) for c in calls)}


@dataclass(frozen=True)
class Prices:
    """Configured prices for a model litellm cannot price: per million tokens, or per GPU hour."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    gpu_hour_usd: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model specification.

    ``kind`` names a kind of :mod:`.models.backends`: ``"litellm"`` (``target`` is the litellm model string),
    ``"hf"`` (``target`` is a folder or hub id, ``options`` holds dtype/quant/device/batch_size/max_new_tokens),
    ``"echo"`` or a registered one.
    ``params`` are call parameters (``temperature``, ``max_tokens``, ``api_base``, ...).
    """

    name: str
    kind: str
    target: str
    options: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    prices: Prices | None = None
    #: adapted prompts: ``(contract, template file)`` pairs, the contract by its id or name (docs/cost.md,
    #: "Measured rework"); they shape requests, not the model's identity
    prompts: tuple[tuple[str, str], ...] = ()
    revision: str = ""  # the weights behind ``target`` where the backend can name them (a local checkpoint's digest)

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @cached_property  # read for every request of a run
    def identity(self) -> str:
        """What decides the model's answers: used in cache keys (never includes credentials)."""
        ident = [self.kind, self.target, list(self.options), public_params(self.param_dict)]
        return json.dumps(ident + [self.revision] if self.revision else ident, sort_keys=True, default=str)


@dataclass(frozen=True)
class Request:
    """One model call: a rendered conversation for one case, model and sample index."""

    model: ModelSpec
    messages: tuple[tuple[str, str], ...]  # (role, content)
    params: tuple[tuple[str, Any], ...] = ()
    sample: int = 0
    # An empty answer is a failed call unless the contract expects empty output; not part of ``key``.
    allow_empty: bool = field(default=False, compare=False)

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @cached_property
    def key(self) -> str:
        """Stable hash of everything that decides the answer: the response cache key."""
        payload = json.dumps([self.model.identity, list(self.messages), public_params(self.param_dict),
                              self.sample], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


class ModelCallError(Exception):
    """A model call that failed after retries (or an empty answer); the item that needed it fails with
    this one-line, redacted message."""
