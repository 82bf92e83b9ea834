"""``os.environ/NAME`` in a named model's parameters (litellm's convention): the value of the variable NAME.

The reference, not the value, is what the spec holds: a key never sits in the parsed configuration, and
``identity`` (cache keys, goldens) does not change when a key is rotated. Values are read when a call is made.
"""

from __future__ import annotations

import os
from typing import Any

PREFIX = "os.environ/"


def env_name(value: Any) -> str | None:
    """``"os.environ/GATEWAY_KEY"`` -> ``"GATEWAY_KEY"``; None for any other value."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return value[len(PREFIX):].strip()
    return None


def resolve(value: Any) -> Any:
    """``value`` with every ``os.environ/NAME`` in it (also inside a header dict or list) replaced by ``$NAME``.

    An unset variable becomes "" here; :func:`missing` reports it, before any call, where a run starts.
    """
    name = env_name(value)
    if name is not None:
        return os.environ.get(name, "")
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v) for v in value)
    return value


def missing(params: dict[str, Any]) -> list[tuple[str, str]]:
    """``(parameter, variable)`` for every ``os.environ/NAME`` in ``params`` whose variable is unset or empty."""
    found: list[tuple[str, str]] = []

    def walk(where: str, value: Any) -> None:
        name = env_name(value)
        if name is not None:
            if not name or not os.environ.get(name):
                found.append((where, name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{where}.{key}", item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(where, item)

    for key, value in params.items():
        walk(key, value)
    return found
