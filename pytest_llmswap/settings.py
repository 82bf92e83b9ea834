"""The migration settings of ``[tool.llmswap]``: one typed, validated object with the documented defaults.

Every value is checked for type, range and allowed values when pytest starts, before any model is called;
a bad one is a :class:`SettingsError` whose text is one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

#: ``semantic`` accepts exactly these (a TOML boolean or one of the strings).
SEMANTIC_VALUES = ("auto", "true", "false")
#: Settings that earlier releases read, with why they went: one line instead of "unknown setting".
REMOVED = {"not_recommended_when": "every rule that flags a candidate now needs a significance test, so there is "
                                   "nothing to choose (docs/cost.md, the verdict table); delete the line"}
STALE_GOLDEN_RULES = ("fail", "warn")


class SettingsError(ValueError):
    """A setting with a wrong type, a value out of range or not among the allowed ones."""


@dataclass(frozen=True)
class Settings:
    """What the verdict, the cost and the scoring need besides the models. docs/cost.md explains each."""

    hourly_rate: float = 100.0            # USD per engineering hour of rework
    alpha: float = 0.05                   # significance level of the paired test; intervals are 1 - alpha
    max_regression_rate: float = 0.05     # the largest broken-case rate a drop-in may have
    max_failed_call_rate: float = 0.0     # failed calls a conclusive verdict tolerates (share of calls)
    max_drift_rate: float = 0.10          # share of cases beyond the incumbent's noise a drop-in tolerates
    semantic: str = "auto"                # "auto" (when the extra is installed), "true", "false"
    semantic_model: str | None = None     # sentence-transformers name or folder; None = bundled all-MiniLM-L6-v2
    stale_goldens: str = "fail"           # a golden whose prompt changed: "fail" its item, or "warn"
    unused_goldens: str = "fail"          # goldens no case uses, in a full run: "fail" the run, or "warn"
    min_pass_rate: float | None = None    # a number makes every contract statistical (one item per model row)

    @classmethod
    def from_mapping(cls, table: dict[str, Any], source: str = "[tool.llmswap]") -> Settings:
        """Validate ``table`` (unknown keys are an error) and fill in the defaults."""
        known = {f.name for f in fields(cls)}
        for name in sorted(set(table) & set(REMOVED)):
            raise SettingsError(f"{source}: {name} was removed: {REMOVED[name]}")
        unknown = sorted(set(table) - known)
        if unknown:
            raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, value in table.items():
            values[name] = _CHECKS[name](f"{source}: {name}", value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def semantic_enabled(self) -> bool | None:
        """True or False when set explicitly; None for "auto" (decided by whether the extra is installed)."""
        return None if self.semantic == "auto" else self.semantic == "true"


# No finite number of cases bounds a pass rate at 100% from below, so such a contract could never pass.
UNREACHABLE_PASS_RATE = ("{where}: no number of cases can show a pass rate of 100% with confidence, so this "
                         "could never pass; to require every case to pass, leave min_pass_rate out (one item per case)")


def _number(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    def check(where: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise SettingsError(f"{where} = {value!r}: must be a number")
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
            raise SettingsError(f"{where} = {value!r}: must lie in {lo}, {hi}")
        return float(value)

    return check


def _pass_rate(where: str, value: Any) -> float:
    rate = _number(0, 1)(where, value)
    if rate == 1:
        raise SettingsError(UNREACHABLE_PASS_RATE.format(where=f"{where} = {value!r}"))
    return rate


def _choice(allowed: tuple[str, ...]) -> Any:
    def check(where: str, value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in allowed:
            raise SettingsError(f"{where} = {value!r}: use one of {', '.join(repr(a) for a in allowed)}")
        return value.lower()

    return check


def _semantic(where: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _choice(SEMANTIC_VALUES)(where + " (or true / false)", value)


def _optional_text(where: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise SettingsError(f"{where} = {value!r}: must be a model name or folder")
    return value


_CHECKS = {
    "hourly_rate": _number(0, math.inf, high_open=True),
    "alpha": _number(0, 1, low_open=True, high_open=True),
    "max_regression_rate": _number(0, 1),
    "max_failed_call_rate": _number(0, 1),
    "max_drift_rate": _number(0, 1),
    "semantic": _semantic,
    "semantic_model": _optional_text,
    "stale_goldens": _choice(STALE_GOLDEN_RULES),
    "unused_goldens": _choice(STALE_GOLDEN_RULES),
    "min_pass_rate": lambda where, value: None if value is None else _pass_rate(where, value),
}
