"""Conversations: ``@llm_contract(messages=[...])``, a list of templated turns and case-held histories.

Each entry of ``messages`` is a turn ``{"role": ..., "content": TEMPLATE}`` (the content is rendered per case
like ``prompt=``) or the name of a case field that holds a whole history: a list of ``{"role", "content"}``
dicts (or that list as a JSON string, as a CSV cell holds it), inserted as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import prompt as prompts
from .prompt import PromptError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Turn:
    """One templated turn of a conversation."""

    role: str
    template: jinja2.Template
    origin: str


Part = Turn | str  # a str is the name of a case field holding a history


def check(messages: Any) -> tuple[dict[str, str] | str, ...]:
    """Validate ``messages`` as given to the decorator (a history field name alone is a list of one)."""
    entries = [messages] if isinstance(messages, str) else messages
    if not isinstance(entries, Sequence) or not entries:
        raise PromptError("llm_contract(messages=...) must be a non-empty list of {'role', 'content'} dicts "
                          "and names of case fields holding a history")
    for i, entry in enumerate(entries, 1):
        if isinstance(entry, str) and entry.strip():
            continue
        if not (isinstance(entry, dict) and set(entry) == {"role", "content"} and entry["role"] in ROLES
                and isinstance(entry["content"], str)):
            raise PromptError(f"llm_contract(messages=...): entry {i} ({entry!r}) must be {{'role': one of "
                              f"{', '.join(ROLES)}, 'content': a template string}} or a case field name")
    return tuple(entries)


def compile_parts(messages: Sequence[dict[str, str] | str], base: Path) -> list[Part]:
    """Load and compile every turn's template (file names are relative to the test file, as for ``prompt=``)."""
    parts: list[Part] = []
    for entry in messages:
        if isinstance(entry, str):
            parts.append(entry)
            continue
        source, origin = prompts.load_template_source(entry["content"], base)
        parts.append(Turn(entry["role"], prompts.compile_template(source, origin), origin))
    return parts


def render(parts: list[Part], variables: dict[str, Any], case_id: str) -> list[tuple[str, str]]:
    """The case's conversation as ``(role, content)`` pairs."""
    out: list[tuple[str, str]] = []
    for part in parts:
        if isinstance(part, Turn):
            out.append((part.role, prompts.render(part.template, variables, case_id, part.origin)))
        else:
            out.extend(_history(variables, part, case_id))
    return out


def _history(variables: dict[str, Any], name: str, case_id: str) -> list[tuple[str, str]]:
    where = f"case {case_id!r}: history field {name!r}"
    if name not in variables:
        raise PromptError(f"{where} is missing (case keys: {', '.join(sorted(variables)) or 'none'})")
    value = variables[name]
    if isinstance(value, str):  # a CSV cell, or a JSONL field kept as text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PromptError(f"{where} is text that is not a JSON list of messages ({exc.msg})") from None
    if not isinstance(value, list):
        raise PromptError(f"{where} must be a list of {{'role', 'content'}} messages, not {type(value).__name__}")
    turns = []
    for i, msg in enumerate(value, 1):
        if not (isinstance(msg, dict) and msg.get("role") in ROLES and isinstance(msg.get("content"), str)):
            raise PromptError(f"{where}: message {i} ({msg!r}) needs a role ({', '.join(ROLES)}) and a text "
                              "content")
        turns.append((msg["role"], msg["content"]))
    return turns
