"""The registry of backends: what each kind of model spec looks like, how it is checked and built, what it can do.

Every place that treats models differently by kind asks the registry (:func:`kind_of`), so a new backend is one
module that calls :func:`register_backend` (docs/extending.md). The built-in kinds (``echo``, ``hf:PATH``,
``provider/model``) are registered here; each imports its heavy library (litellm, torch) only when built or checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..types import GOLDENS_KIND, ModelCallError, ModelSpec

if TYPE_CHECKING:
    from .base import Backend
    from .executor import ExecutionSettings

#: A spec's target (the model it names) and its options, as a backend kind parses them from the spec's text.
Parsed = tuple[str, Mapping[str, str]]


def _accept(_: Any) -> None:
    """The default check: anything goes."""


def _target(spec: ModelSpec) -> str:
    return spec.target


@dataclass(frozen=True)
class BackendKind:
    """One kind of model spec and the backend that answers it.

    ``parse`` reads a spec's text (``--candidate-model TEXT`` or a configured ``model``) and returns its target and
    options, or None when the text is not of this kind; it raises ``ValueError`` for text of this kind that names
    no usable model, and resolves a relative path under ``base`` (the rootdir). ``build`` makes the backend
    (imports go inside it). ``check`` raises ``ValueError`` for a model that cannot be called in principle (run
    before any call); ``check_params`` for call parameters the backend does not honour. ``text`` writes the
    spec back as the user would. ``local``: it computes on this machine (one local model at a time, timed by CPU
    time on ``device=cpu``, calibrated per weights and hardware). ``tool_calls``: it answers an application's
    calls with tools and response formats (else as text). ``logits``: it gives teacher-forced log-probs, so the
    ``kl`` and ``top1`` metrics. ``deployments``: several ``api_bases`` can be balanced by litellm's Router.
    ``litellm_prices``: its calls are priced from litellm's cost table when the model has no configured price.
    ``revision`` names the weights behind a target (a local checkpoint's digest): part of the spec's identity, so
    a model retrained in the same folder is never answered from an earlier run's stored responses.
    """

    kind: str
    form: str  # how a spec of this kind is written, in the message for a spec no kind reads
    parse: Callable[[str, Path | None], Parsed | None]
    build: Callable[[ModelSpec, ExecutionSettings], Backend]
    check: Callable[[ModelSpec], None] = _accept
    check_params: Callable[[Mapping[str, Any]], None] = _accept
    text: Callable[[ModelSpec], str] = _target
    local: bool = False
    tool_calls: bool = False
    logits: bool = False
    deployments: bool = False
    litellm_prices: bool = False
    revision: Callable[[str], str] = lambda target: ""


_REGISTERED: dict[str, BackendKind] = {}


def register_backend(backend: BackendKind) -> BackendKind:
    """Make ``backend`` a kind of model spec for every run of this process; returns it.

    Registered kinds read a spec's text before the built-in ones, so a prefix such as ``mine:`` wins over
    ``provider/model``. Call it from a plugin or conftest loaded before the contracts are collected.
    """
    if backend.kind in _REGISTERED or any(b.kind == backend.kind for b in _BUILT_IN) or backend.kind == GOLDENS_KIND:
        raise ValueError(f"a backend kind {backend.kind!r} is already registered")
    _REGISTERED[backend.kind] = backend
    return backend


def kinds() -> tuple[BackendKind, ...]:
    """Every kind, in the order they read a spec's text."""
    return (*_REGISTERED.values(), *_BUILT_IN)


def find(kind: str) -> BackendKind | None:
    """The kind registered under ``kind``, if any."""
    return _REGISTERED.get(kind) or next((b for b in _BUILT_IN if b.kind == kind), None)


def kind_of(spec: ModelSpec | str) -> BackendKind:
    """The registered kind of a spec (or of a kind's name); ``ValueError`` when there is none."""
    kind = spec if isinstance(spec, str) else spec.kind
    found = find(kind)
    if found is None:
        raise ValueError(f"no backend for model kind {kind!r}")
    return found


def parse(text: str, name: str, base: Path | None) -> ModelSpec | None:
    """The spec ``text`` names, read by the first kind that knows it; None when none does."""
    for backend in kinds():
        parsed = backend.parse(text, base)
        if parsed is not None:
            target, options = parsed
            return ModelSpec(name=name, kind=backend.kind, target=target, options=tuple(sorted(options.items())),
                             revision=backend.revision(target))
    return None


def forms() -> list[str]:
    """How each kind of spec is written: registered kinds, then the API form most specs use, local models, echo."""
    return [b.form for b in (*_REGISTERED.values(), *reversed(_BUILT_IN))]


# -- the built-in kinds -------------------------------------------------------------------------------------


def _build_echo(spec: ModelSpec, settings: ExecutionSettings) -> Backend:
    from .echo import EchoBackend

    return EchoBackend(spec)


def _parse_hf(text: str, base: Path | None) -> Parsed | None:
    if not text.startswith("hf:"):
        return None
    path, _, query = text[3:].partition("?")
    if not path:
        raise ValueError(f"model spec {text!r}: hf: needs a folder or hub id, e.g. hf:./models/q?dtype=bfloat16")
    if base is not None and not Path(path).is_absolute() and (base / path).exists():
        path = str((base / path).resolve())
    from urllib.parse import parse_qsl

    from .hf_spec import canonical_options, validate_hf_options  # no torch, no transformers

    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    try:
        validate_hf_options(options)
    except ValueError as exc:
        raise ValueError(f"model spec {text!r}: {exc}") from None
    return path, canonical_options(path, options)


def _hf_revision(target: str) -> str:
    from .weights import weights_digest

    folder = Path(target).expanduser()
    return weights_digest(folder) if folder.is_dir() else ""


def _check_hf_params(params: Mapping[str, Any]) -> None:
    from .hf_sampling import check_hf_params

    check_hf_params(dict(params))


def _check_hf(spec: ModelSpec) -> None:
    """Sampling parameters a local model honours, and a checkpoint on a device this machine has."""
    from .hf_spec import check_spec

    try:
        _check_hf_params(spec.param_dict)
        check_spec(spec)
    except ModelCallError as exc:
        raise ValueError(str(exc)) from None
    except ValueError as exc:
        raise ValueError(f"model {spec.name!r}: {exc}") from None


def _hf_text(spec: ModelSpec) -> str:
    query = "&".join(f"{k}={v}" for k, v in spec.options)
    return f"hf:{spec.target}" + (f"?{query}" if query else "")


def _build_hf(spec: ModelSpec, settings: ExecutionSettings) -> Backend:
    from .hf import HFBackend

    return HFBackend(spec)


def _parse_litellm(text: str, base: Path | None) -> Parsed | None:
    return (text, {}) if "/" in text and not text.startswith("/") and all(text.split("/", 1)) else None


def _check_litellm(spec: ModelSpec) -> None:
    from .litellm_backend import check_spec

    check_spec(spec)


def _build_litellm(spec: ModelSpec, settings: ExecutionSettings) -> Backend:
    from .litellm_backend import LiteLLMBackend

    return LiteLLMBackend(spec, concurrency=settings.concurrency, timeout_s=settings.timeout_s,
                          retries=settings.retries, backoff_s=settings.backoff_s, max_wait_s=settings.max_wait_s)


_BUILT_IN: tuple[BackendKind, ...] = (  # in the order they read a spec: provider/model would also read hf:org/x
    BackendKind("echo", "echo", lambda text, base: ("echo", {}) if text == "echo" else None, _build_echo),
    BackendKind("hf", "hf:PATH for a local transformers model", _parse_hf, _build_hf, check=_check_hf,
                check_params=_check_hf_params, text=_hf_text, local=True, logits=True, revision=_hf_revision),
    BackendKind("litellm", "provider/model for an API model through litellm (e.g. openai/gpt-4o-mini)",
                _parse_litellm, _build_litellm, check=_check_litellm, tool_calls=True, deployments=True,
                litellm_prices=True),
)
