"""Parsing model specs: a NAME configured in ``[tool.llmswap.models]``, else a kind in :mod:`.backends`
(``provider/model`` for litellm, ``hf:PATH?k=v`` for transformers, ``echo``, or a registered kind)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..types import ModelSpec, Prices
from . import backends

PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "gpu_hour_usd")
# Several deployments of one API model, balanced by litellm's Router (see docs/scale.md).
ROUTER_KEYS = ("api_bases", "routing_strategy", "allowed_fails", "cooldown_time")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class SpecError(ValueError):
    """A model spec that names no model we can call."""


def split_named(text: str) -> tuple[str | None, str]:
    """``"fast=openai/gpt-4o-mini"`` -> ``("fast", "openai/gpt-4o-mini")``; a plain spec has no name."""
    head, sep, tail = text.partition("=")
    if sep and _NAME.match(head) and tail:
        return head, tail
    return None, text


def parse_spec(text: str, models: dict[str, dict[str, Any]], base: Path | None = None) -> ModelSpec:
    """Parse a spec from the command line or ini; ``models`` is ``[tool.llmswap.models]``.

    A relative ``hf:`` folder is looked up under ``base`` (the rootdir) first, so configured models work
    from any working directory.
    """
    label, spec = split_named(text.strip())
    if spec in models:
        entry = dict(models[spec])
        inner = _parse_plain(str(entry.pop("model")), label or spec, base)
        prices = {k: _price(spec, k, entry.pop(k)) for k in PRICE_KEYS if k in entry}
        prompts = _prompts(spec, entry.pop("prompts", {}), base)
        if any(k in entry for k in ROUTER_KEYS):
            entry.update(_deployments(spec, inner.kind, entry))
        return ModelSpec(name=inner.name, kind=inner.kind, target=inner.target, options=inner.options,
                         params=tuple(sorted(entry.items())), prices=Prices(**prices) if prices else None,
                         prompts=prompts, revision=inner.revision)
    try:
        return _parse_plain(spec, label or spec, base)
    except SpecError as exc:
        configured = f" Configured names: {', '.join(sorted(models))}." if models else ""
        raise SpecError(f"{exc}{configured}") from None


def _price(name: str, key: str, value: Any) -> float:
    """A configured price: a finite number >= 0 (a string or nan would crash the summary after every call was paid)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SpecError(f"[tool.llmswap.models.{name}]: {key} = {value!r}: must be a number of USD, 0 or more")
    return float(value)


def _prompts(name: str, value: Any, base: Path | None) -> tuple[tuple[str, str], ...]:
    """A named model's adapted prompts: contract name -> template file (relative to the rootdir), each file there."""
    where = f"[tool.llmswap.models.{name}]"
    example = 'prompts = {test_triage = "prompts/triage.student.j2"}'
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                              for k, v in value.items()):
        raise SpecError(f"{where}: prompts must be a table of contract name = template file, e.g. {example}")
    found = []
    for contract, template in sorted(value.items()):
        path = Path(template) if base is None else base / template
        if not path.is_file():
            raise SpecError(f"{where}: prompts.{contract}: template file not found: {path} (paths are relative to "
                            "the rootdir, whose pyproject.toml configures the model)")
        found.append((contract, str(path.resolve())))
    return tuple(found)


def _deployments(name: str, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The validated ``api_bases`` of a named model, as a tuple (a spec must stay hashable)."""
    where = f"[tool.llmswap.models.{name}]"
    bases = entry.get("api_bases")
    if bases is None:
        key = next(k for k in ROUTER_KEYS if k in entry)
        raise SpecError(f"{where}: {key} needs api_bases, the deployments to route between")
    if not backends.kind_of(kind).deployments:
        raise SpecError(f"{where}: api_bases is for API models (provider/model); this one is {kind!r}")
    if "api_base" in entry:
        raise SpecError(f"{where}: set api_base (one deployment) or api_bases (several), not both")
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) and b.strip() for b in bases):
        raise SpecError(f'{where}: api_bases must be a non-empty list of URLs, e.g. '
                        f'["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]')
    twice = sorted({b for b in bases if bases.count(b) > 1})
    if twice:
        raise SpecError(f"{where}: api_bases lists {twice[0]} more than once")
    if not isinstance(entry.get("routing_strategy", ""), str):
        raise SpecError(f"{where}: routing_strategy must be a string, e.g. \"simple-shuffle\"")
    fails, rest = entry.get("allowed_fails", 0), entry.get("cooldown_time", 1)
    if isinstance(fails, bool) or not isinstance(fails, int) or fails < 0:
        raise SpecError(f"{where}: allowed_fails = {fails!r}: must be a whole number of failed calls, 0 or more")
    if isinstance(rest, bool) or not isinstance(rest, (int, float)) or not math.isfinite(rest) or rest <= 0:
        raise SpecError(f"{where}: cooldown_time = {rest!r}: must be a number of seconds above 0")
    return {"api_bases": tuple(bases)}


def _parse_plain(spec: str, name: str, base: Path | None) -> ModelSpec:
    try:
        parsed = backends.parse(spec, name, base)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    if parsed is None:
        raise SpecError(f"unknown model spec {spec!r}: use {', '.join(backends.forms())}, or a name configured in "
                        "[tool.llmswap.models].")
    return parsed
