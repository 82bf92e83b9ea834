"""The run's data model: each case's result, the models and contracts, and the JSON file that holds them.

Plain dataclasses with lossless ``to_dict``/``from_dict`` so that ``llmswap report`` and ``llmswap merge``
work from saved files exactly as the plugin does at the end of a session. The summaries derived from the
cases (per candidate, switching cost, verdicts) are typed too: :mod:`.summaries`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .settings import Settings
from .types import Prices, Sample
from .verdict.summaries import Summaries

RESULTS_FORMAT_VERSION = 4
#: Summaries of older versions are recomputed from the cases when read: version 2 carried the net regression
#: rate, version 3 a contract's mean edit and semantic similarity only (version 4: every metric's mean, and
#: measured rework).
_RECOMPUTED_VERSIONS = (2, 3)


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
    """A model as the run saw it: the name used in test ids, its spec, its resolved id and how it is priced.

    ``throughput_tok_s`` is the output tokens per second of its calibration (GPU-hour pricing only), the
    fastest of ``throughput_rounds_tok_s``, measured on ``calibrated_on`` (hardware) at ``calibrated_at``;
    ``cost_basis`` says in words how its calls were priced.
    """

    name: str
    spec: str
    kind: str
    resolved_id: str = ""
    prices: Prices | None = None
    throughput_tok_s: float | None = None
    cost_basis: str = ""
    calibrated_on: str = ""
    calibrated_at: str = ""
    throughput_rounds_tok_s: list[float] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)  # adapted prompts: contract -> template, as configured

    def monthly_range(self, monthly_usd: float | None) -> tuple[float, float] | None:
        """The monthly cost at the fastest and at the slowest calibration round (a GPU-hour cost is inversely
        proportional to throughput); None when the cost is not priced by a calibration."""
        if monthly_usd is None or not self.throughput_rounds_tok_s or not self.throughput_tok_s:
            return None
        return (monthly_usd * self.throughput_tok_s / max(self.throughput_rounds_tok_s),
                monthly_usd * self.throughput_tok_s / min(self.throughput_rounds_tok_s))


@dataclass(frozen=True)
class Unadapted:
    """A candidate's answer to the incumbent's own prompt where the candidate has an adapted prompt for the
    contract, judged against the same goldens as the row (docs/cost.md, "Measured rework")."""

    prompt: str
    output: Sample | None = None
    candidate_passed: bool | None = None
    check_message: str | None = None
    flip: str | None = None
    exceeded: list[str] = field(default_factory=list)
    exceeded_metrics: list[str] = field(default_factory=list)
    call_error: str | None = None

    @property
    def held(self) -> bool:
        """Answered, its checks pass and within tolerance."""
        return bool(self.candidate_passed) and not self.exceeded and not self.call_error


@dataclass(frozen=True)
class CaseResult:
    """One case of one contract on one candidate (``candidate`` is None for a replay or record row).

    ``golden`` holds the incumbent's K samples (with ``passed``, its checks on each), ``output`` the candidate's
    answer.
    ``golden_passes`` counts the samples the contract's checks passed on; ``golden_passed`` is True when
    most did. ``candidate_passed`` is the checks on the candidate's answer (None when its call failed:
    ``call_error`` says why). ``flip`` is ``"regression"`` (the candidate failed where the incumbent passed
    at least one sample), ``"improvement"`` or None; the suite statistics weigh it by the incumbent's pass
    fraction. ``exceeded`` holds one line per tolerance broken and ``exceeded_metrics`` their metric names.
    ``passed`` is the pytest outcome of the item; ``failure`` a run problem (no golden, a failed call).
    ``invariance`` and ``golden_invariance`` hold the outcomes of its perturbed inputs (docs/metrics.md).

    Frozen, and built once by the judge (``run/judge.py``) when the case's outcome is known; a changed copy is
    ``dataclasses.replace(case, ...)``.
    """

    contract: str
    case_id: str
    candidate: str | None
    variables: dict[str, Any]
    prompt: str
    golden: list[Sample] = field(default_factory=list)
    output: Sample | None = None
    golden_passes: int | None = None
    candidate_passed: bool | None = None
    check_message: str | None = None
    flip: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    floors: dict[str, float | None] = field(default_factory=dict)
    beyond_noise: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)
    exceeded: list[str] = field(default_factory=list)
    exceeded_metrics: list[str] = field(default_factory=list)
    passed: bool = False
    failure: str | None = None
    call_error: str | None = None
    # Invariance checks: each perturbed input's outcome on this row's model (``invariance.outcome``), and on the
    # incumbent (from the golden, on every row that has one).
    invariance: list[dict[str, Any]] = field(default_factory=list)
    golden_invariance: list[dict[str, Any]] = field(default_factory=list)
    # The candidate on the incumbent's prompt, when this row asked it an adapted prompt (``prompt`` is then that).
    unadapted: Unadapted | None = None

    @property
    def held(self) -> bool:
        """The case passed on the candidate: its call answered, its checks pass and it is within tolerance."""
        return bool(self.candidate_passed) and not self.exceeded and not self.call_error

    @property
    def golden_passed(self) -> bool | None:
        """Whether most of the incumbent's samples passed the checks (None when they were not checked)."""
        fraction = self.golden_pass_fraction
        return None if fraction is None else fraction > 0.5

    @property
    def golden_pass_fraction(self) -> float | None:
        """Share of the incumbent's samples that passed the checks (None when they were not checked)."""
        if self.golden_passes is None or not self.golden:
            return None
        return self.golden_passes / len(self.golden)


@dataclass
class RunResults:
    """Everything a run produced. ``summaries`` are derived from ``cases`` by :mod:`.aggregate`."""

    created_at: str
    incumbent: ModelInfo | None = None
    candidates: list[ModelInfo] = field(default_factory=list)
    contracts: list[ContractInfo] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    stale_goldens: list[str] = field(default_factory=list)
    unused_goldens: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    summaries: Summaries | None = None
    format_version: int = RESULTS_FORMAT_VERSION

    @property
    def run_settings(self) -> Settings:
        """The run's settings, typed, with the documented defaults for any the file leaves out."""
        return Settings.from_mapping(self.settings, "results settings")

    def to_dict(self, *, logprobs: bool = False) -> dict[str, Any]:
        """The JSON file's content; per-token log-probs are left out unless ``logprobs`` (they are most of the
        bytes, and KL is already computed)."""
        data = asdict(replace(self, cases=[]))
        # A case's golden samples repeat on every candidate row: the file holds each set once, by reference.
        samples: dict[str, list[dict[str, Any]]] = {}
        data["cases"] = [_case_dict(case, logprobs) for case in self.cases]
        for case in data["cases"]:
            if case["golden"]:
                ref = hashlib.sha256(json.dumps(case["golden"], sort_keys=True, default=str).encode()).hexdigest()[:16]
                samples.setdefault(ref, case["golden"])
                case["golden"] = ref
        data["golden_samples"] = samples
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "results") -> RunResults:
        if not isinstance(data, dict) or "format_version" not in data:
            raise ResultsFormatError(f"{source}: not a pytest-llmswap results file (no format_version)")
        version = data["format_version"]
        if version in _RECOMPUTED_VERSIONS:
            return _upgrade(cls.from_dict({**data, "format_version": RESULTS_FORMAT_VERSION, "summaries": None,
                                           "settings": _current_settings(data.get("settings"))}, source))
        if version != RESULTS_FORMAT_VERSION:
            raise ResultsFormatError(
                f"{source}: results format version {version} is not supported (this pytest-llmswap reads "
                f"version {RESULTS_FORMAT_VERSION}); re-run the suite or upgrade pytest-llmswap")
        try:
            samples = data.get("golden_samples") or {}
            cases = [dict(c, golden=samples[c["golden"]]) if isinstance(c.get("golden"), str) else c
                     for c in data.get("cases", [])]
            return from_plain(cls, {**data, "cases": cases})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsFormatError(f"{source}: malformed results file ({exc})") from None


def _case_dict(case: CaseResult, logprobs: bool) -> dict[str, Any]:
    """A case as the file holds it, its samples as each writes itself (the golden by value, before de-duplication).

    Log-probs are left out of every sample (the golden, the output and the answer to the incumbent's prompt)
    unless ``logprobs``.
    """
    unadapted = case.unadapted
    data = asdict(replace(case, golden=[], output=None,
                          unadapted=None if unadapted is None else replace(unadapted, output=None)))
    data["golden"] = [s.to_dict(logprobs=logprobs) for s in case.golden]
    data["output"] = None if case.output is None else case.output.to_dict(logprobs=logprobs)
    if unadapted is not None and unadapted.output is not None:
        data["unadapted"]["output"] = unadapted.output.to_dict(logprobs=logprobs)
    return data


def _current_settings(settings: Any) -> Any:
    from .settings import REMOVED

    return {k: v for k, v in settings.items() if k not in REMOVED} if isinstance(settings, dict) else settings


def _upgrade(results: RunResults) -> RunResults:
    """An older file's results with its summaries (and so its verdicts) computed as this version computes them."""
    from .verdict.aggregate import summarize

    results.summaries = summarize(results)
    return results


def from_plain(kind: Any, data: Any) -> Any:
    """Rebuild a value of type ``kind`` (dataclasses, lists, tuples, dicts, optionals) from JSON data.

    Unknown keys are ignored, so a file written by a newer patch release with an extra field still reads.
    """
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        return from_plain(next(a for a in typing.get_args(kind) if a is not type(None)), data)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(data, dict):
            raise TypeError(f"{kind.__name__} needs an object, not {type(data).__name__}")
        if kind is Sample:  # its keys are not its fields one to one (usage, calls): it reads itself
            return Sample.from_dict(data)
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: from_plain(hints[f.name], data[f.name]) for f in dataclasses.fields(kind)
                       if f.init and f.name in data})
    if origin in (list, Sequence) and isinstance(data, list):
        (item,) = typing.get_args(kind) or (Any,)
        return [from_plain(item, v) for v in data]
    if origin is tuple and isinstance(data, (list, tuple)):
        args = typing.get_args(kind)
        item = args[0] if args else Any
        return tuple(from_plain(item, v) for v in data)
    if origin is dict and isinstance(data, dict):
        _, value = typing.get_args(kind) or (str, Any)
        return {k: from_plain(value, v) for k, v in data.items()}
    return data


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


# Measured per run, so shards measure them apart: not a disagreement about which model it is.
_PER_RUN = ("resolved_id", "throughput_tok_s", "cost_basis", "calibrated_on", "calibrated_at",
            "throughput_rounds_tok_s")


def _same_model(kind: str, first: ModelInfo, other: ModelInfo, first_src: str, other_src: str) -> None:
    blank = dict.fromkeys(_PER_RUN[1:])
    if not first.resolved_id or not other.resolved_id:
        blank["resolved_id"] = ""
    _same(kind, first.name, replace(first, **blank), replace(other, **blank), first_src, other_src)


def _more_resolved(first: ModelInfo, other: ModelInfo) -> ModelInfo:
    return first if first.resolved_id else other


def _same(kind: str, key: str, first: Any, other: Any, first_src: str, other_src: str) -> None:
    if first != other:
        raise ResultsFormatError(f"{other_src} and {first_src} disagree on {kind} {key!r}; only shards of one "
                                 "run (same incumbent, models and settings) can be merged")
