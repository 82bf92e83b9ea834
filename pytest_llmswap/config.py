"""``[tool.llmswap]`` configuration from pyproject.toml: named models, prices and the validated settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .settings import Settings, SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A ``[tool.llmswap]`` table that cannot be used."""


@dataclass(frozen=True)
class LlmswapConfig:
    """The ``[tool.llmswap]`` table: ``models`` by name plus the :class:`Settings`."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    source: str = "defaults"


def load_config(rootpath: Path) -> LlmswapConfig:
    """Read ``rootpath/pyproject.toml``; no file or no table gives the defaults."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return LlmswapConfig()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("llmswap", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    models = table.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(m, dict) for m in models.values()):
        raise ConfigError(f"{path}: [tool.llmswap.models] must hold one table per model name")
    for name, model in models.items():
        if "model" not in model:
            raise ConfigError(f"{path}: [tool.llmswap.models.{name}] needs a 'model' key (e.g. "
                              "model = \"openai/gpt-4o-mini\" or \"hf:./models/q\")")
    try:
        settings = Settings.from_mapping({k: v for k, v in table.items() if k != "models"},
                                         f"{path} [tool.llmswap]")
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    return LlmswapConfig(models=models, settings=settings, source=str(path))
