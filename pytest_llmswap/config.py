"""``[tool.llmswap]`` configuration from pyproject.toml: named models, prices and migration settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULTS: dict[str, Any] = {
    "hourly_rate": 100.0,          # USD per engineering hour of rework
    "alpha": 0.05,                 # significance level of the McNemar test
    "max_regression_rate": 0.05,   # largest share of regressed cases a drop-in may have
    "not_recommended_when": "both",  # "both": significant and over the rate; "either": one suffices
    "semantic": "auto",            # semantic similarity: "auto" (when the extra is installed), true, false
    "semantic_model": None,        # sentence-transformers name or folder; None = bundled all-MiniLM-L6-v2
}


class ConfigError(ValueError):
    """A ``[tool.llmswap]`` table that cannot be used."""


@dataclass(frozen=True)
class LlmswapConfig:
    """The ``[tool.llmswap]`` table: ``models`` by name plus the settings in :data:`DEFAULTS`."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
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
    models = table.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(m, dict) for m in models.values()):
        raise ConfigError(f"{path}: [tool.llmswap.models] must hold one table per model name")
    for name, model in models.items():
        if "model" not in model:
            raise ConfigError(f"{path}: [tool.llmswap.models.{name}] needs a 'model' key (e.g. "
                              "model = \"openai/gpt-4o-mini\" or \"hf:./models/q\")")
    unknown = sorted(set(table) - set(DEFAULTS) - {"models"})
    if unknown:
        raise ConfigError(f"{path}: unknown [tool.llmswap] key(s) {', '.join(unknown)}; known: models, "
                          f"{', '.join(sorted(DEFAULTS))}")
    settings = dict(DEFAULTS)
    settings.update({k: v for k, v in table.items() if k != "models"})
    return LlmswapConfig(models=models, settings=settings, source=str(path))
