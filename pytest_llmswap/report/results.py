"""The results of a run: what the JSON file holds and what every report renders.

Plain dataclasses with lossless ``to_dict``/``from_dict`` so that ``llmswap report`` and ``llmswap merge``
work from saved files exactly as the plugin does at the end of a session.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

RESULTS_FORMAT_VERSION = 1


class ResultsFormatError(ValueError):
    """A results file that cannot be read: wrong format, wrong version, missing fields."""


@dataclass
class ContractInfo:
    """One contract (a decorated test function) and its migration settings."""

    id: str  # "examples/test_triage.py::test_triage"
    output: str = "text"
    tolerance: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    rework_hours: float = 2.0
    calls_per_month: float | None = None


@dataclass
class ModelInfo:
    """A model as the run saw it: the name used in test ids, its spec and its resolved id."""

    name: str
    spec: str
    kind: str
    resolved_id: str = ""
    prices: dict[str, float | None] | None = None


@dataclass
class CaseResult:
    """One case of one contract on one candidate (``candidate`` is None for a replay or record row).

    ``golden`` holds the incumbent's samples (``Response.to_dict``), ``output`` the candidate's response.
    ``golden_passed``/``candidate_passed`` are the contract's checks on each; ``flip`` is ``"regression"``
    (passed on the golden, fails on the candidate), ``"improvement"`` or None. ``metrics`` maps metric
    names to values (None when not applicable). ``passed`` is the pytest outcome of the item.
    """

    contract: str
    case_id: str
    candidate: str | None
    variables: dict[str, Any]
    prompt: str
    golden: list[dict[str, Any]] = field(default_factory=list)
    output: dict[str, Any] | None = None
    golden_passed: bool | None = None
    candidate_passed: bool | None = None
    check_message: str | None = None
    flip: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    floors: dict[str, float | None] = field(default_factory=dict)
    beyond_noise: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)
    passed: bool = False
    failure: str | None = None


@dataclass
class RunResults:
    """Everything a run produced. ``summaries`` are derived from ``cases`` by :mod:`..aggregate`."""

    created_at: str
    incumbent: ModelInfo | None = None
    candidates: list[ModelInfo] = field(default_factory=list)
    contracts: list[ContractInfo] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    stale_goldens: list[str] = field(default_factory=list)
    unused_goldens: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    summaries: dict[str, Any] = field(default_factory=dict)
    format_version: int = RESULTS_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "results") -> RunResults:
        if not isinstance(data, dict) or "format_version" not in data:
            raise ResultsFormatError(f"{source}: not a pytest-llmswap results file (no format_version)")
        version = data["format_version"]
        if version != RESULTS_FORMAT_VERSION:
            raise ResultsFormatError(
                f"{source}: results format version {version} is not supported (this pytest-llmswap reads "
                f"version {RESULTS_FORMAT_VERSION}); re-run the suite or upgrade pytest-llmswap")
        try:
            return cls(
                created_at=data["created_at"],
                incumbent=_build(ModelInfo, data.get("incumbent")),
                candidates=[_build(ModelInfo, m) for m in data.get("candidates", [])],
                contracts=[_build(ContractInfo, c) for c in data.get("contracts", [])],
                cases=[_build(CaseResult, c) for c in data.get("cases", [])],
                stale_goldens=list(data.get("stale_goldens", [])),
                unused_goldens=list(data.get("unused_goldens", [])),
                settings=dict(data.get("settings", {})),
                summaries=dict(data.get("summaries", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ResultsFormatError(f"{source}: malformed results file ({exc})") from None


def merge_results(parts: list[RunResults]) -> RunResults:
    """Join results of runs over parts of one suite (xdist workers, CI shards) into one.

    Raises ResultsFormatError when the parts disagree on the incumbent or hold the same case twice
    with different outcomes.
    """
    if not parts:
        raise ResultsFormatError("nothing to merge")
    incumbents = {p.incumbent.resolved_id for p in parts if p.incumbent and p.incumbent.resolved_id}
    if len(incumbents) > 1:
        raise ResultsFormatError(f"cannot merge results recorded against different incumbents: "
                                 f"{', '.join(sorted(incumbents))}")
    merged = RunResults(created_at=min(p.created_at for p in parts),
                        incumbent=next((p.incumbent for p in parts if p.incumbent), None),
                        settings=dict(parts[0].settings))
    candidates: dict[str, ModelInfo] = {}
    contracts: dict[str, ContractInfo] = {}
    cases: dict[tuple[str, str, str | None], CaseResult] = {}
    for part in parts:
        for model in part.candidates:
            if not candidates.get(model.name) or not candidates[model.name].resolved_id:
                candidates[model.name] = model
        contracts.update({c.id: c for c in part.contracts})
        for case in part.cases:
            key = (case.contract, case.case_id, case.candidate)
            if key in cases and asdict(cases[key]) != asdict(case):
                raise ResultsFormatError(f"case {case.case_id!r} of {case.contract} on "
                                         f"{case.candidate or 'the incumbent'} appears twice with different results")
            cases[key] = case
    merged.candidates = list(candidates.values())
    merged.contracts = list(contracts.values())
    merged.cases = list(cases.values())
    merged.stale_goldens = sorted({g for p in parts for g in p.stale_goldens})
    merged.unused_goldens = sorted({g for p in parts for g in p.unused_goldens})
    return merged


def _build(kind: type, data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})
