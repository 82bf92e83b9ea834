"""Structured drift for JSON outputs: leaf-field agreement and named fields (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

MISSING = object()


def parse_json(text: str) -> Any:
    """The parsed JSON value, or ``MISSING`` when ``text`` is not JSON."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return MISSING


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten JSON to ``{"a.b[0].c": leaf}``; empty containers count as leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(leaves(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def field_agreement(golden: Any, candidate: Any) -> float:
    """Share of leaf paths (union of both sides) whose values are equal; key order does not matter."""
    g, c = leaves(golden), leaves(candidate)
    paths = set(g) | set(c)
    if not paths:
        return 1.0
    return sum(1 for p in paths if p in g and p in c and g[p] == c[p]) / len(paths)


def get_path(value: Any, path: str) -> Any:
    """The value at a dotted path (``"customer.id"``, ``"items[0].sku"``), or ``MISSING``."""
    flat = leaves(value)
    if path in flat:
        return flat[path]
    current = value
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and isinstance(current, list):
            index = int(part[1:-1])
            current = current[index] if index < len(current) else MISSING
        elif isinstance(current, dict):
            current = current.get(part, MISSING)
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def named_field_mismatches(goldens: Sequence[Any], candidate: Any, paths: tuple[str, ...]) -> list[str]:
    """One readable line per named field whose candidate value is none of the values the golden samples gave.

    With K samples of a noisy incumbent, any value the incumbent itself produced is acceptable.
    """
    out = []
    shown = lambda v: "<missing>" if v is MISSING else json.dumps(v)  # noqa: E731
    for path in paths:
        allowed = [get_path(g, path) for g in goldens]
        c = get_path(candidate, path)
        if c not in allowed:
            values = " or ".join(dict.fromkeys(shown(v) for v in allowed))
            out.append(f"field {path!r}: golden {values}, candidate {shown(c)}")
    return out


_KEY_VALUE = re.compile(r"^\s*[\w .-]{1,40}\s*:\s*\S")


def looks_structured(text: str) -> bool:
    """A JSON object or array, or every non-empty line a ``key: value`` pair (two lines or more)."""
    if isinstance(parse_json(text), (dict, list)):
        return True
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 2 and all(_KEY_VALUE.match(line) for line in lines)


def semantic_on_structured(contract: str, goldens: Sequence[str]) -> str | None:
    """One warning line when most of a contract's golden answers are structured and it judges them by sentence
    similarity: a wrong field and a correct paraphrase score alike there (measured on triage tickets: wrong
    categories 0.70-0.86, correct paraphrases 0.62-0.75), so a ``semantic`` limit cannot separate them."""
    if not goldens or sum(map(looks_structured, goldens)) * 2 <= len(goldens):
        return None
    return (f"{contract}: its goldens are structured (JSON or key: value lines) and it sets a 'semantic' tolerance; "
            "sentence similarity does not separate a wrong field from a paraphrase there (wrong categories scored "
            "0.70-0.86, correct paraphrases 0.62-0.75): judge the fields with tolerance={'fields': [...]}")
