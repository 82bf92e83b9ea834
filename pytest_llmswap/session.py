"""The run: plan every request after collection, execute them up front, judge each item, aggregate.

This module knows nothing of pytest's hooks; ``plugin.py`` calls it. It raises :class:`RunError` for bad
input that must stop the run with one line before any model is called.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contract import Case, ResolvedContract
from .golden import GoldenCase, GoldenFormatError, GoldenStore
from .invariance import unrecorded
from .items import ItemRunner
from .models.cache import ResponseCache
from .models.executor import Executor
from .models.spec import SpecError, parse_spec
from .models.throughput_store import Calibration, ThroughputStore
from .prepare import counting, logit_drifts, semantic_available, semantic_scorer, throughputs
from .pricing import Pricing
from .progress import Progress
from .results import CaseResult, ContractInfo, ModelInfo, RunResults, merge_results
from .run import ALL_CASES, ItemKey, RunError, RunOptions
from .types import ModelCallError, ModelSpec, Request, Response, public_params

if TYPE_CHECKING:
    from .drift.logits import LogitDrift

class LlmSwapSession(ItemRunner):
    """State of one pytest session (or one xdist worker); judging each item is :class:`ItemRunner`'s."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.store = GoldenStore()
        self.contracts: dict[str, ResolvedContract] = {}
        self.results: list[CaseResult] = []
        self.requests: dict[ItemKey, list[Request]] = {}
        self.responses: dict[str, Response | ModelCallError] = {}
        # --llmswap-no-cache still needs a store the run's xdist workers share, or each would call every model.
        cache = (ResponseCache(options.cache_dir, options.run_id) if options.cache_dir
                 else ResponseCache.ephemeral(options.run_id))
        self.executor = Executor(cache, options.execution)
        self.recorded: list[Path] = []
        self.absorbed: list[RunResults] = []
        self.semantic: Any = None
        self.throughput: dict[str, Calibration] = {}
        self.logits: dict[ItemKey, LogitDrift] = {}
        self._golden_passes: dict[tuple[str, str], int] = {}
        self._app_mismatch: dict[tuple[str, str], str] = {}  # application cases whose golden no longer replays
        self.app_recording: set[ItemKey] = set()  # application items that record their calls in the test body
        self.perturbed: dict[ItemKey, list[tuple[str, Request]]] = {}  # invariance: (label, request) per item
        self.planned = False
        self.errors: list[str] = []  # what fails the run at its end (unwritable outputs, unused goldens), a line each
        self.warnings: list[str] = []
        self.deselected = 0
        self.pruned = 0
        self.report: Any = None
        self.started_at = _now()

    # -- collection -------------------------------------------------------------------------------------

    @property
    def rows(self) -> list[str | None]:
        """The model rows each case gets: the incumbent's (replay or record) and one per candidate."""
        names = [c.name for c in self.options.candidates]
        return ([None] if self.options.record or not names else []) + names

    def register(self, resolved: ResolvedContract) -> list[tuple[ItemKey, str]]:
        """Remember a contract; return its items as ``(key, test id)`` pairs for parametrisation.

        A statistical contract (``min_pass_rate``) is one item per model row; the others one per case and row.
        """
        self.contracts[resolved.nodeid] = resolved
        if self._min_pass_rate(resolved) is not None:
            return [(ItemKey(resolved.nodeid, ALL_CASES, row), row or "all-cases") for row in self.rows]
        return [(ItemKey(resolved.nodeid, case.id, row), case.id if row is None else f"{case.id}-{row}")
                for case in resolved.cases for row in self.rows]

    def _min_pass_rate(self, resolved: ResolvedContract) -> float | None:
        """The contract's own ``min_pass_rate``, else the suite's (``min_pass_rate`` in [tool.llmswap]) unless the
        contract asks for ``per_case``."""
        own = resolved.contract
        if own.per_case:
            return None
        return own.min_pass_rate if own.min_pass_rate is not None else self.options.settings.min_pass_rate

    def _per_case(self, keys: list[ItemKey]) -> list[ItemKey]:
        """Every statistical item's key expanded into one key per case."""
        return [ItemKey(k.nodeid, c.id, k.model) for k in keys
                for c in (self.contracts[k.nodeid].cases if k.case_id == ALL_CASES else ())] + [
            k for k in keys if k.case_id != ALL_CASES]

    # -- plan and execute -------------------------------------------------------------------------------

    def plan(self, keys: list[ItemKey]) -> None:
        """Build every request the selected items need; check goldens are readable first."""
        keys = self._per_case(keys)
        try:
            for key in keys:
                self.golden(key)
        except GoldenFormatError as exc:
            raise RunError(str(exc)) from None
        if self.options.candidates and self._semantic_required() and not semantic_available():
            raise RunError("a contract sets a 'semantic' tolerance but the semantic extra is not installed: "
                           "pip install 'pytest-llmswap[semantic]'")
        if self.options.candidates and not self.options.record:
            if keys and not any(self.golden(k) for k in keys):
                raise RunError("no goldens found for the selected contracts: record them first with "
                               f"{self.options.record_command}")
        self._check_sampling(keys)
        for key in keys:
            contract, case = self._contract_case(key)
            if contract.contract.app:  # its calls are made inside the test body
                if key.model is None and self._needs_recording(key):
                    self.app_recording.add(key)
            elif key.model is None and self._needs_recording(key):
                if self.options.incumbent is None:
                    raise RunError(f"{key.nodeid}: recording a contract with a prompt needs --incumbent-model SPEC, "
                                   "the model whose answers become goldens")
                spec = self.options.incumbent
                assert spec is not None
                self.requests[key] = [self._request(spec, contract, case.messages, s)
                                      for s in range(self.options.samples)]
            elif key.model is not None:
                spec = self._candidate(key.model)
                self.requests[key] = [self._request(spec, contract, case.messages, 0)]
            if key in self.requests:  # each model is asked the perturbed inputs too, planned with the rest
                self.perturbed[key] = [(v.label, self._request(spec, contract, v.messages, 0)) for v in case.variants]
        self.planned = True

    def _check_sampling(self, keys: list[ItemKey]) -> None:
        """Local models take only the sampling parameters they honour: refuse the others before any call."""
        from .models.hf_sampling import check_hf_params

        for nodeid in {k.nodeid for k in keys}:
            params = self.contracts[nodeid].contract.params
            for spec in (self.options.incumbent, *self.options.candidates):
                if spec is not None and spec.kind == "hf" and params:
                    try:
                        check_hf_params({**spec.param_dict, **params})
                    except ValueError as exc:
                        raise RunError(f"{nodeid} on model {spec.name!r}: {exc}") from None

    def execute(self, progress: Progress | None = None, *, only_when_calling: bool = False) -> int:
        """Call the models for every planned request; return how many calls were made (store misses).

        ``progress`` counts every answer as it arrives, per model; with ``only_when_calling`` it stays silent
        when the store already holds every answer. With a store, execution holds a lock on it: xdist workers
        plan the same requests, the first one calls the models (and shows its progress) and the others then
        find every answer in the store. Models priced by the GPU hour then get their calibrated throughput
        (:func:`.prepare.throughputs`): stored, or measured side by side and stored.
        """
        recording = [r for k, reqs in self.requests.items() if k.model is None for r in reqs]
        candidates = [r for k, reqs in self.requests.items() if k.model is not None for r in reqs]
        for key, pairs in self.perturbed.items():
            (recording if key.model is None else candidates).extend(r for _, r in pairs)
        if not recording and not candidates:
            return 0
        before = self.executor.calls
        say = progress.note if progress else None  # calibration lines, even when the calls print nothing
        cache = self.executor.usable_cache()
        lock = cache.lock() if cache else contextlib.nullcontext()
        try:
            with lock:
                fresh = self.options.record == "all"
                if progress and only_when_calling and cache is not None and self._all_stored(cache, recording,
                                                                                             candidates, fresh):
                    progress = None
                on_answer = counting(progress, recording + candidates) if progress else None
                if recording:
                    self.responses.update(self.executor.run(recording, fresh=fresh, on_answer=on_answer))
                if candidates:
                    self.responses.update(self.executor.run(candidates, on_answer=on_answer))
        finally:
            if progress:
                progress.finish()
        self._prepare(recording + candidates, say)
        return self.executor.calls - before

    @staticmethod
    def _all_stored(cache: ResponseCache, recording: list[Request], candidates: list[Request], fresh: bool) -> bool:
        """Whether the store answers every request (a recording with ``fresh`` only from this run)."""
        return (cache.holds_all((r.key for r in recording), this_run_only=fresh)
                and cache.holds_all(r.key for r in candidates))

    def _semantic_wanted(self) -> bool:
        setting = self.options.settings.semantic_enabled
        return semantic_available() or self._semantic_required() if setting is None else setting

    def _semantic_required(self) -> bool:
        return any(c.contract.tolerance.semantic is not None for c in self.contracts.values())

    def _prepare(self, requests: list[Request], say: Callable[[str], None] | None = None) -> None:
        """Throughput, logit drift and embeddings for the whole run, before the first item."""
        incumbent = self.options.incumbent
        specs = [s for s in (incumbent, *self.options.candidates) if s is not None]
        store = ThroughputStore(self.options.cache_dir) if self.options.cache_dir else None
        self.throughput, warnings = throughputs(self.executor, incumbent, specs, requests, self.responses,
                                                store=store, recalibrate=self.options.recalibrate, say=say)
        self.warnings += warnings
        answered = [(key, self.golden(key), self.responses.get(reqs[0].key))
                    for key, reqs in self.requests.items() if key.model is not None]
        answered = [(k, g, a) for k, g, a in answered if g is not None and isinstance(a, Response)]
        local = [(k, self._candidate(k.model), self._contract_case(k)[1].messages, g.responses[0])
                 for k, g, _ in answered if self._candidate(k.model).kind == "hf"]  # type: ignore[arg-type]
        if local:
            self.logits = logit_drifts(self.executor, local, self.options.cache_dir)  # type: ignore[assignment]
        if answered and self._semantic_wanted():
            self.semantic = semantic_scorer(self.options.settings, self.options.cache_dir,
                                            [([str(s["text"]) for s in g.samples], a.text) for _, g, a in answered])

    # -- per item ---------------------------------------------------------------------------------------

    def golden(self, key: ItemKey) -> GoldenCase | None:
        """The golden of the item's case: for a candidate row, this run's fresh recording when there is one
        (xdist workers then need not wait for each other's golden files), else the stored golden."""
        contract, case = self._contract_case(key)
        recording = self.requests.get(ItemKey(key.nodeid, key.case_id)) if key.model is not None else None
        if recording:
            answers = [self.responses.get(r.key) for r in recording]
            if all(isinstance(a, Response) for a in answers):
                return GoldenCase(prompt_hash=case.prompt_hash, variables=case.variables,
                                  messages=[list(m) for m in case.messages], model=answers[0].model, params={},
                                  samples=[a.to_dict() for a in answers if isinstance(a, Response)])
        return self.store.get(contract.module_path, contract.key, key.case_id)

    def primary_response(self, key: ItemKey) -> Response | None:
        """What the ``output`` fixture shows: the candidate's answer, the new recording, or the golden."""
        if key.case_id == ALL_CASES:
            return None  # bound per case while a statistical item runs
        if key in self.requests:
            answer = self.responses.get(self.requests[key][0].key)
            return answer if isinstance(answer, Response) else None
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def golden_response(self, key: ItemKey) -> Response | None:
        if key.model is None or key.case_id == ALL_CASES:
            return self.primary_response(key)
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def variables(self, key: ItemKey) -> dict[str, Any]:
        return {} if key.case_id == ALL_CASES else dict(self._contract_case(key)[1].variables)

    def _record(self, key: ItemKey, samples: list[dict[str, Any]],
                perturbed: dict[str, dict[str, Any]] | None = None) -> None:
        contract, case = self._contract_case(key)
        spec = self.options.incumbent
        model = self.executor.backend(spec).resolved_model_id() if spec else samples[0].get("model", "")
        params = {**(spec.param_dict if spec else {}), **contract.contract.params}
        self.store.put(contract.module_path, contract.key, key.case_id, GoldenCase(
            prompt_hash=case.prompt_hash, variables=case.variables, messages=[list(m) for m in case.messages],
            model=model, params=public_params(params), samples=samples, recorded_at=self.started_at,
            recorded_by=self.options.incumbent_text, perturbed=perturbed or {}))

    # -- the end ----------------------------------------------------------------------------------------

    def flush_goldens(self) -> list[Path]:
        self.recorded = self.store.flush()
        return self.recorded

    def stale_and_unused(self) -> tuple[list[str], list[str]]:
        """Goldens whose prompt changed, and goldens no collected contract case uses, as ``module::key[case]``."""
        stale, unused = [], []
        for module, key, case_id, is_stale in self._golden_states():
            (stale if is_stale else unused).append(f"{module.name}::{key}[{case_id}]")
        return stale, unused

    def prune_unused(self) -> int:
        """Stage the removal of every unused golden of the collected modules; return how many."""
        unused = [(m, k, c) for m, k, c, is_stale in self._golden_states() if not is_stale]
        for module, key, case_id in unused:
            self.store.remove(module, key, case_id)
        return len(unused)

    def _golden_states(self) -> list[tuple[Path, str, str, bool]]:
        """``(module, contract key, case id, stale)`` for each golden that is stale (True) or unused (False)."""
        out = []
        by_key = {(c.module_path, c.key): c for c in self.contracts.values()}
        for module in sorted({c.module_path for c in self.contracts.values()}):
            for key, cases in sorted(self.store.contracts(module).items()):
                contract = by_key.get((module, key))
                current = {c.id: c for c in contract.cases} if contract else {}
                for case_id, golden in sorted(cases.items()):
                    if case_id not in current:
                        out.append((module, key, case_id, False))
                    elif contract is not None and contract.stale(current[case_id], golden):
                        out.append((module, key, case_id, True))
        return out

    def export(self) -> dict[str, Any]:
        """This worker's results, for the xdist controller."""
        return self.results_model().to_dict()

    def absorb(self, payload: dict[str, Any]) -> None:
        """On the xdist controller: keep a worker's results to merge at the end."""
        self.absorbed.append(RunResults.from_dict(payload, source=f"xdist worker {len(self.absorbed)}"))

    def results_model(self) -> RunResults:
        """This session's results, merged with any xdist workers' (summaries are added by aggregate)."""
        if self.absorbed:
            return merge_results([(f"xdist worker {i}", r) for i, r in enumerate(self.absorbed)])
        stale, unused = self.stale_and_unused()
        incumbent = self.options.incumbent or self._recorder()
        return RunResults(
            created_at=self.started_at,
            incumbent=(self._model_info(incumbent, None) if incumbent else _golden_model(self.results)),
            candidates=[self._model_info(c, c.name) for c in self.options.candidates],
            contracts=[ContractInfo(id=c.nodeid, output=c.contract.output, tolerance=c.contract.tolerance.to_dict(),
                                    weight=c.contract.weight, rework_hours=c.contract.rework_hours,
                                    calls_per_month=c.contract.calls_per_month)
                       for c in self.contracts.values() if any(r.contract == c.nodeid for r in self.results)],
            cases=self.results, stale_goldens=stale, unused_goldens=unused, settings=self.options.settings.to_dict())

    def _model_info(self, spec: ModelSpec, candidate: str | None) -> ModelInfo:
        """A model, the ids its answers carried (read from the answers, so every xdist worker agrees) and
        how its calls are priced in this run."""
        answers = [r.output for r in self.results if r.candidate == candidate and r.output] if candidate else [
            s for r in self.results for s in r.golden]
        resolved = sorted({a["model"] for a in answers if a.get("model")})
        prices = spec.prices.__dict__ if spec.prices else None
        calibration = self.throughput.get(spec.name)
        throughput = calibration.throughput_tok_s if calibration else None
        basis = Pricing.of(prices, throughput).basis
        if calibration:
            rounds = calibration.rounds_tok_s
            basis += (f" on {calibration.measured_at[:10]} ({calibration.hardware}); its slowest of {len(rounds)} "
                      f"rounds puts the monthly cost {max(rounds) / min(rounds) - 1:.0%} higher")
        return ModelInfo(name=spec.name, spec=_spec_text(spec), kind=spec.kind, resolved_id=", ".join(resolved),
                         prices=prices, throughput_tok_s=throughput, cost_basis=basis,
                         calibrated_on=calibration.hardware if calibration else "",
                         calibrated_at=calibration.measured_at if calibration else "",
                         throughput_rounds_tok_s=list(calibration.rounds_tok_s) if calibration else [])

    def _recorder(self) -> ModelSpec | None:
        """In a replay, the model that recorded every golden of the collected contracts, as configured now, so
        its configured prices win over litellm's table; None when goldens disagree, predate ``recorded_by`` or
        name a model that no longer parses. Every xdist worker collects the same contracts, so all agree."""
        try:
            names = {golden.recorded_by for contract in self.contracts.values() for case in contract.cases
                     if (golden := self.store.get(contract.module_path, contract.key, case.id)) is not None}
            if len(names) != 1 or not (name := names.pop()):
                return None
            return parse_spec(name, self.options.models, self.options.root)
        except (GoldenFormatError, SpecError):  # a deselected module's bad file, a model no longer configured
            return None

    # -- helpers ----------------------------------------------------------------------------------------

    def _contract_case(self, key: ItemKey) -> tuple[ResolvedContract, Case]:
        contract = self.contracts[key.nodeid]
        return contract, contract.case(key.case_id)

    def _candidate(self, name: str) -> ModelSpec:
        return next(c for c in self.options.candidates if c.name == name)

    def _needs_recording(self, key: ItemKey) -> bool:
        if self.options.record == "all":
            return True
        if self.options.record != "new":
            return False
        golden = self.golden(key)
        contract, case = self._contract_case(key)
        return golden is None or contract.stale(case, golden) or bool(
            unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed))

    def _request(self, spec: ModelSpec, contract: ResolvedContract, messages: tuple[tuple[str, str], ...],
                 sample: int) -> Request:
        return Request(model=spec, messages=messages, params=tuple(sorted(contract.contract.params.items())),
                       sample=sample, allow_empty=contract.contract.allow_empty)

    def close(self, *, owner: bool) -> None:
        """Close the response store; the process that created a run-only store (not an xdist worker) deletes it."""
        store = self.executor.cache
        if store is None:
            return
        if owner and self.options.cache_dir is None:
            store.remove()
        else:
            store.close()

def _golden_model(results: list[CaseResult]) -> ModelInfo | None:
    """In a replay, the incumbent is whatever model recorded the goldens."""
    models = sorted({s.get("model", "") for r in results for s in r.golden if s.get("model")})
    return ModelInfo(name="incumbent", spec="(goldens)", kind="golden", resolved_id=", ".join(models)) if models else None


def _spec_text(spec: ModelSpec) -> str:
    if spec.kind == "hf":
        query = "&".join(f"{k}={v}" for k, v in spec.options)
        return f"hf:{spec.target}" + (f"?{query}" if query else "")
    return spec.target


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
