"""Prompt templates: loading, strict rendering and hashing."""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2", ".txt", ".md", ".prompt")


class PromptError(ValueError):
    """A template that cannot be loaded or rendered for a case."""


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # StrictUndefined: a variable missing from a case must be an error, never an empty string in a prompt.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


_FILE_NAME = re.compile(r"^[^\s{}]+\.[A-Za-z0-9]{1,10}$")


def looks_like_path(prompt: str) -> bool:
    """True when ``prompt`` names a template file rather than holding inline template text.

    A file name is one word with a suffix (``triage.j2``, ``prompts/triage.tmpl``): no whitespace, no
    jinja braces. Any such prompt is loaded as a file, and a missing file is an error, so a typo never
    silently becomes the literal prompt text.
    """
    text = prompt.strip()
    return text.endswith(TEMPLATE_SUFFIXES) and "\n" not in text and "{" not in text or bool(_FILE_NAME.match(text))


def load_template_source(prompt: str, base_dir: Path) -> tuple[str, str]:
    """Return ``(source, origin)``: the template text and where it came from (a path or ``"inline"``)."""
    if not looks_like_path(prompt):
        return prompt, "inline"
    path = (base_dir / prompt).resolve()
    if not path.is_file():
        raise PromptError(f"prompt template file not found: {path} (paths are relative to the test file)")
    return path.read_text(encoding="utf-8"), str(path)


def compile_template(source: str, origin: str) -> jinja2.Template:
    """Compile a template once; a syntax error names the template and the line."""
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"prompt template {origin}: syntax error on line {exc.lineno}: {exc.message}") from None


def render(template: jinja2.Template, variables: dict[str, Any], case_id: str, origin: str) -> str:
    """Render ``template`` for one case; a missing variable names the variable and the case."""
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        raise PromptError(f"prompt template {origin}: case {case_id!r}: {exc.message}; add it to the case "
                          f"(case keys: {', '.join(sorted(variables)) or 'none'})") from None


def prompt_hash(messages: list[tuple[str, str]] | tuple[tuple[str, str], ...],
                params: dict[str, Any] | None = None) -> str:
    """Short stable hash of everything that shapes a call: the rendered conversation and the contract's
    generation parameters. A golden whose hash differs is stale.

    Without parameters it is the hash of the messages alone, the hash every golden held before parameters
    counted, so those goldens stay current.
    """
    payload: Any = [list(m) for m in messages]
    if params:
        payload = {"messages": payload, "params": params}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
