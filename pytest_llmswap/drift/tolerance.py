"""How far a candidate may drift from the golden: a limit per metric of :mod:`.metrics`, named fields, invariance."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .metrics import Metric, metrics


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
    (``llm_contract(invariant=...)``) whose checked output must equal the unperturbed answer's. ``registered``
    holds the limits on metrics registered with :func:`~pytest_llmswap.register_metric`, by tolerance key (set
    them in the dict form: ``tolerance={"my_metric": 0.5}``).
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
    # checked output equals the model's own unperturbed answer (pytest_llmswap/contract/invariance.py).
    invariance: float | None = None
    registered: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_value(cls, value: Tolerance | dict[str, Any] | None) -> Tolerance:
        """Accept a Tolerance, a plain dict with the same keys, or None (no drift limit)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise ToleranceError(f"tolerance must be a dict or Tolerance, not {type(value).__name__}")
        own = {f.name for f in fields(cls)} - {"registered"}
        keys = {m.tolerance_key for m in metrics()}
        unknown = sorted(set(value) - own - keys)
        if unknown:
            raise ToleranceError(f"unknown tolerance key(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(own | keys))}")
        data = dict(value)
        if isinstance(data.get("fields"), str):
            data["fields"] = (data["fields"],)
        data["fields"] = tuple(data.get("fields", ()))
        for name in (*keys, "invariance"):
            if data.get(name) is not None and (isinstance(data[name], bool) or not isinstance(data[name], (int, float))):
                raise ToleranceError(f"tolerance {name!r} must be a number, not {data[name]!r}")
        limits = {k: data.pop(k) for k in keys - own if k in data}
        return cls(**data, registered=tuple(sorted((k, v) for k, v in limits.items() if v is not None)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fields": list(self.fields)} if self.fields else {}
        out.update({m.tolerance_key: limit for m, limit in self.limits()})
        if self.invariance is not None:
            out["invariance"] = self.invariance
        return out

    def limit(self, key: str) -> float | None:
        """The limit set on tolerance key ``key``, None when unset."""
        if key in _OWN:
            return getattr(self, key)  # type: ignore[no-any-return]
        return dict(self.registered).get(key)

    def limits(self) -> list[tuple[Metric, float]]:
        """``(metric, limit)`` for every limit set, in the order tolerances are judged."""
        return [(m, limit) for m in metrics() if (limit := self.limit(m.tolerance_key)) is not None]


_OWN = frozenset(f.name for f in fields(Tolerance))
