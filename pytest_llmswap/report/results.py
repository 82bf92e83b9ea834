"""The results of a run: what the JSON file holds and what every report renders.

Plain dataclasses with lossless ``to_dict``/``from_dict`` so that ``llmswap report`` and ``llmswap merge``
work from saved files exactly as the plugin does at the end of a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
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


def merge_results(parts: Sequence[tuple[str, RunResults]]) -> RunResults:
    """Join the results of runs over parts of one suite (xdist workers, CI shards) into one.

    ``parts`` pairs each result with where it came from, for error messages. Cases are de-duplicated;
    models, contracts and settings must agree. A golden is unused overall only if every part lists it
    as unused (a shard that never collected a module cannot know). Summaries are left to the caller.
    Raises :class:`ResultsFormatError` when the parts are not shards of one run.
    """
    if not parts:
        raise ResultsFormatError("nothing to merge")
    (base_src, base) = parts[0]
    merged = RunResults(created_at=max(r.created_at for _, r in parts), incumbent=base.incumbent,
                        settings=dict(base.settings))
    models: dict[str, tuple[ModelInfo, str]] = {}
    contracts: dict[str, tuple[ContractInfo, str]] = {}
    cases: dict[tuple[str, str, str | None], tuple[CaseResult, str]] = {}
    unused = set(base.unused_goldens)
    for src, part in parts:
        if part.incumbent is not None:
            if merged.incumbent is None:
                merged.incumbent = part.incumbent
            _same_model("the incumbent", merged.incumbent, part.incumbent, base_src, src)
            merged.incumbent = _more_resolved(merged.incumbent, part.incumbent)
        for key in sorted(set(base.settings) | set(part.settings)):
            _same("setting", key, base.settings.get(key), part.settings.get(key), base_src, src)
        for model in part.candidates:
            seen_model = models.setdefault(model.name, (model, src))
            _same_model("candidate", seen_model[0], model, seen_model[1], src)
            models[model.name] = (_more_resolved(seen_model[0], model), seen_model[1])
        for contract in part.contracts:
            seen_contract = contracts.setdefault(contract.id, (contract, src))
            _same("contract", contract.id, seen_contract[0], contract, seen_contract[1], src)
        for case in part.cases:
            seen_case = cases.setdefault((case.contract, case.case_id, case.candidate), (case, src))
            if seen_case[0] != case:
                raise ResultsFormatError(
                    f"case {case.contract}[{case.case_id}] on {case.candidate or 'the incumbent'} appears in "
                    f"{seen_case[1]} and {src} with different results; merge shards of one run only")
        unused &= set(part.unused_goldens)
        merged.stale_goldens += [g for g in part.stale_goldens if g not in merged.stale_goldens]
    merged.candidates = [m for m, _ in models.values()]
    merged.contracts = [c for c, _ in contracts.values()]
    merged.cases = [c for c, _ in cases.values()]
    merged.unused_goldens = sorted(unused)
    return merged


def _same_model(kind: str, first: ModelInfo, other: ModelInfo, first_src: str, other_src: str) -> None:
    # A part that ran no case of a model saw no answer and so no resolved id: that is not a disagreement.
    if not first.resolved_id or not other.resolved_id:
        first, other = replace(first, resolved_id=""), replace(other, resolved_id="")
    _same(kind, first.name, first, other, first_src, other_src)


def _more_resolved(first: ModelInfo, other: ModelInfo) -> ModelInfo:
    return first if first.resolved_id else other


def _same(kind: str, key: str, first: Any, other: Any, first_src: str, other_src: str) -> None:
    if first != other:
        raise ResultsFormatError(f"{other_src} and {first_src} disagree on {kind} {key!r}; only shards of one "
                                 "run (same incumbent, models and settings) can be merged")


def _build(kind: type, data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})
