"""How far a candidate may drift from the golden: the tolerance and, in one table, each metric's direction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

#: Tolerance key -> (metric name in a case's scores, True when higher is closer to the golden).
#: A higher-is-closer metric's tolerance is a floor; the others' is a ceiling.
METRICS: dict[str, tuple[str, bool]] = {
    "exact": ("exact", True),
    "edit": ("edit", True),
    "semantic": ("semantic", True),
    "field_agreement": ("fields", True),
    "top1": ("top1", True),
    "tools": ("tools", True),
    "style": ("style", False),
    "tokens": ("tokens", False),
    "kl": ("kl", False),
}

#: Metrics only a local model compared with a local golden produces (teacher-forced log-probs). A tolerance on
#: one does not apply where it cannot be measured (API and served models): shown as n/a, never a failure, so
#: one suite can hold local and API candidates.
LOCAL_ONLY = frozenset({"kl", "top1"})


class ToleranceError(ValueError):
    """A tolerance with an unknown key or a value that is not a number."""


@dataclass(frozen=True)
class Tolerance:
    """How far a candidate may drift from the golden before its test fails.

    Similarity floors (``exact``, ``edit``, ``semantic``, ``field_agreement``, ``top1``, ``tools``: tool-call
    agreement of an application's calls) fail when the
    candidate scores below them; ceilings (``style``, ``kl``, ``tokens``) fail when it scores above.
    ``fields`` names JSON fields (dotted paths such as ``"customer.id"``) whose candidate value must be
    one the incumbent gave in its golden samples. ``invariance`` is the share of a case's perturbed inputs
    (``llm_contract(invariant=...)``) whose checked output must equal the unperturbed answer's.
    """

    fields: tuple[str, ...] = ()
    exact: float | None = None
    edit: float | None = None
    semantic: float | None = None
    field_agreement: float | None = None
    style: float | None = None
    tokens: float | None = None
    kl: float | None = None
    top1: float | None = None
    tools: float | None = None
    # Not a drift metric (nothing is compared with the golden): the share of a case's perturbed inputs whose
    # checked output equals the model's own unperturbed answer (pytest_llmswap/invariance.py).
    invariance: float | None = None

    @classmethod
    def from_value(cls, value: Tolerance | dict[str, Any] | None) -> Tolerance:
        """Accept a Tolerance, a plain dict with the same keys, or None (no drift limit)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise ToleranceError(f"tolerance must be a dict or Tolerance, not {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ToleranceError(f"unknown tolerance key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data = dict(value)
        if isinstance(data.get("fields"), str):
            data["fields"] = (data["fields"],)
        data["fields"] = tuple(data.get("fields", ()))
        for name in (*METRICS, "invariance"):
            if data.get(name) is not None and (isinstance(data[name], bool) or not isinstance(data[name], (int, float))):
                raise ToleranceError(f"tolerance {name!r} must be a number, not {data[name]!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fields": list(self.fields)} if self.fields else {}
        out.update({n: getattr(self, n) for n in (*METRICS, "invariance") if getattr(self, n) is not None})
        return out

    def limits(self) -> list[tuple[str, float, bool]]:
        """``(metric name, limit, higher is closer)`` for every limit set."""
        return [(metric, getattr(self, key), higher) for key, (metric, higher) in METRICS.items()
                if getattr(self, key) is not None]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names this tolerance needs scored."""
        return tuple(metric for metric, _, _ in self.limits())
