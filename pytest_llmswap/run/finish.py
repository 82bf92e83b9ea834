"""Finishing a run: prune and write the goldens, build the run's results, write the reports, apply the
golden rules, and say how it went in a :class:`RunEnd`.

Nothing here may end a run in a traceback: each problem becomes one line of the :class:`RunEnd`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..golden import GoldenFormatError
from ..models.backends import kind_of
from ..models.spec import SpecError, parse_spec
from ..models.throughput_store import Calibration, ThroughputStore, calibration_key
from ..verdict.pricing import Pricing
from ..report.terminal import RunReport, write_reports
from ..results import CaseResult, ContractInfo, ModelInfo, RunResults, merge_results
from ..types import GOLDENS_KIND, ModelSpec
from .prepare import gpu_hour_priced
from .state import RunState


class RunOutcome(enum.Enum):
    """How the end of a run went, for the exit status: ``FAILED`` when an output or a golden rule failed it."""

    OK = "ok"
    FAILED = "failed"
    CRASHED = "crashed"


@dataclass(frozen=True)
class RunEnd:
    """The end of a run: how it went, what was written (None on an xdist worker, or when summarising failed),
    and the lines for the terminal."""

    outcome: RunOutcome
    report: RunReport | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pruned: int = 0


def finish_run(state: RunState, *, full_run: bool, worker: bool) -> RunEnd:
    """Prune and flush goldens, then (not on an xdist worker) write the reports and apply the golden rules.

    ``full_run``: every test of the suite was selected, so unused goldens can be told (syrupy's rule).
    """
    options = state.options
    errors: list[str] = []
    warnings: list[str] = []
    pruned = 0
    if options.prune:
        if full_run:
            pruned = _prune_unused(state)
        else:
            errors.append("--llmswap-prune needs a full run (no -k, -m, --lf or node ids): a partial run "
                          "cannot tell which goldens are unused; nothing was pruned")
    recorded: list[Path] = []
    try:
        recorded = state.store.flush()
    except OSError as exc:  # one line naming the golden file; the reports are still written
        errors.append(str(exc).splitlines()[0])
    if worker:
        return RunEnd(RunOutcome.FAILED if errors else RunOutcome.OK, None, errors, warnings, pruned)
    try:
        report = write_reports(results_model(state), options, recorded)
    except Exception as exc:  # noqa: BLE001 - the end of a run never ends in a traceback; say it in one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        errors.append(f"pytest-llmswap could not summarise this run ({type(exc).__name__}: {first}); "
                      "please report it with the run's output")
        return RunEnd(RunOutcome.CRASHED, None, errors, warnings, pruned)
    unused = report.results.unused_goldens
    if unused and full_run and not options.prune:
        line = (f"{len(unused)} unused golden(s) (no collected case uses them): remove them with "
                f"--llmswap-record new --llmswap-prune, or set unused_goldens = \"warn\" in [tool.llmswap]")
        (errors if options.settings.unused_goldens == "fail" else warnings).append(line)
    executor = state.executor
    if executor.store_error is not None:
        errors.append(f"{executor.store_error} (answers after it were not kept for a rerun)")
    store = executor.cache
    if store is not None and store.unreadable:
        warnings.append(f"{store.unreadable} stored answer(s) in {store.path} could not be read (not JSON, or "
                        "no text): the models were asked again and the answers replaced")
    outcome = RunOutcome.FAILED if report.errors or errors else RunOutcome.OK
    return RunEnd(outcome, report, errors, warnings, pruned)


def export(state: RunState) -> dict[str, Any]:
    """An xdist worker's results, for the controller."""
    return results_model(state).to_dict()


def absorbed(payload: dict[str, Any], index: int) -> RunResults:
    """On the xdist controller: worker ``index``'s results, to merge at the end."""
    return RunResults.from_dict(payload, source=f"xdist worker {index}")


def results_model(state: RunState) -> RunResults:
    """The run's results, merged with any xdist workers' (summaries are added by aggregate)."""
    if state.absorbed:
        return merge_results([(f"xdist worker {i}", r) for i, r in enumerate(state.absorbed)])
    stale, unused = stale_and_unused(state)
    incumbent = state.options.incumbent or _recorder(state)
    results = state.results
    return RunResults(
        created_at=state.started_at,
        incumbent=(_model_info(state, incumbent, None) if incumbent else _golden_model(results)),
        candidates=[_model_info(state, c, c.name) for c in state.options.candidates],
        contracts=[ContractInfo(id=c.nodeid, output=c.contract.output, tolerance=c.contract.tolerance.to_dict(),
                                weight=c.contract.weight, rework_hours=c.contract.rework_hours,
                                calls_per_month=c.contract.calls_per_month)
                   for c in state.contracts.values() if any(r.contract == c.nodeid for r in results)],
        cases=results, stale_goldens=stale, unused_goldens=unused, settings=state.options.settings.to_dict())


def stale_and_unused(state: RunState) -> tuple[list[str], list[str]]:
    """Goldens whose prompt changed, and goldens no collected contract case uses, as ``module::key[case]``."""
    stale, unused = [], []
    for module, key, case_id, is_stale in _golden_states(state):
        (stale if is_stale else unused).append(f"{module.name}::{key}[{case_id}]")
    return stale, unused


def _prune_unused(state: RunState) -> int:
    """Stage the removal of every unused golden of the collected modules; return how many."""
    unused = [(m, k, c) for m, k, c, is_stale in _golden_states(state) if not is_stale]
    for module, key, case_id in unused:
        state.store.remove(module, key, case_id)
    return len(unused)


def _golden_states(state: RunState) -> list[tuple[Path, str, str, bool]]:
    """``(module, contract key, case id, stale)`` for each golden that is stale (True) or unused (False)."""
    out = []
    contracts = state.contracts.values()
    by_key = {(c.module_path, c.key): c for c in contracts}
    for module in sorted({c.module_path for c in contracts}):
        for key, cases in sorted(state.store.contracts(module).items()):
            contract = by_key.get((module, key))
            current = {c.id: c for c in contract.cases} if contract else {}
            for case_id, golden in sorted(cases.items()):
                if case_id not in current:
                    out.append((module, key, case_id, False))
                elif contract is not None and contract.stale(current[case_id], golden):
                    out.append((module, key, case_id, True))
    return out


def _model_info(state: RunState, spec: ModelSpec, candidate: str | None) -> ModelInfo:
    """A model, the ids its answers carried (read from the answers, so every xdist worker agrees) and
    how its calls are priced in this run."""
    results = state.results
    answers = [r.output for r in results if r.candidate == candidate and r.output] if candidate else [
        s for r in results for s in r.golden]
    resolved = sorted({a.model for a in answers if a.model})
    prices = spec.prices
    calibration = state.answers.throughput.get(spec.name) or (None if candidate else _stored_calibration(state, spec))
    throughput = calibration.throughput_tok_s if calibration else None
    basis = Pricing.of(prices, throughput).basis
    if calibration:
        rounds = calibration.rounds_tok_s
        basis += (f" on {calibration.measured_at[:10]} ({calibration.hardware}); its slowest of {len(rounds)} "
                  f"rounds puts the monthly cost {max(rounds) / min(rounds) - 1:.0%} higher")
    return ModelInfo(name=spec.name, spec=kind_of(spec).text(spec), kind=spec.kind, resolved_id=", ".join(resolved),
                     prices=prices, throughput_tok_s=throughput, cost_basis=basis,
                     calibrated_on=calibration.hardware if calibration else "",
                     calibrated_at=calibration.measured_at if calibration else "",
                     throughput_rounds_tok_s=list(calibration.rounds_tok_s) if calibration else [],
                     prompts={c: _shown_path(t, state.options.root) for c, t in spec.prompts} if candidate else {})


def _stored_calibration(state: RunState, spec: ModelSpec) -> Calibration | None:
    """A replay does not call the model that recorded its goldens: a GPU-hour price for it comes from its stored
    calibration on this hardware, when an earlier run (or ``llmswap calibrate``) made one; None otherwise."""
    if state.options.cache_dir is None or not gpu_hour_priced(spec):
        return None
    stored, _ = ThroughputStore(state.options.cache_dir).load()
    return stored.get(calibration_key(spec)[0])


def _shown_path(path: str, root: Path | None) -> str:
    """``path`` relative to the rootdir when it is under it (reports travel; absolute paths say nothing there)."""
    try:
        return Path(path).relative_to(root).as_posix() if root else path
    except ValueError:
        return path


def _recorder(state: RunState) -> ModelSpec | None:
    """In a replay, the model that recorded every golden of the collected contracts, as configured now, so
    its configured prices win over litellm's table; None when goldens disagree, predate ``recorded_by`` or
    name a model that no longer parses. Every xdist worker collects the same contracts, so all agree."""
    try:
        names = {golden.recorded_by for contract in state.contracts.values() for case in contract.cases
                 if (golden := state.store.get(contract.module_path, contract.key, case.id)) is not None}
        if len(names) != 1 or not (name := names.pop()):
            return None
        return parse_spec(name, state.options.models, state.options.root)
    except (GoldenFormatError, SpecError):  # a deselected module's bad file, a model no longer configured
        return None


def _golden_model(results: list[CaseResult]) -> ModelInfo | None:
    """In a replay, the incumbent is whatever model recorded the goldens."""
    models = sorted({s.model for r in results for s in r.golden if s.model})
    return ModelInfo(name="incumbent", spec="(goldens)", kind=GOLDENS_KIND, resolved_id=", ".join(models)) if models else None
