"""Judging one test item: the glue between a contract's test function and ``drift.judge``.

:class:`ItemRunner` is the per-item half of :class:`~pytest_llmswap.session.LlmSwapSession`: it runs a case on
the incumbent (record or replay) or on a candidate, for prompt contracts and application contracts, alone or
as part of a statistical item, and keeps the outcome in a :class:`~pytest_llmswap.results.CaseResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from . import appcalls, invariance
from .aggregate import statistical_verdict
from .checks import describe, make_check
from .contract import Case, ResolvedContract
from .drift.judge import CheckOutcome, ExtraScorer, Judgement, check_goldens, judge_candidate
from .golden import GoldenCase
from .intercept import candidate_answer
from .models.executor import Executor
from .results import CaseResult
from .run import ALL_CASES, ItemKey, RunOptions
from .types import ModelCallError, ModelSpec, Request, Response

if TYPE_CHECKING:
    from .drift.logits import LogitDrift


class ItemRunner:
    """Runs and judges items; the session provides the run's state and its golden and model lookups."""

    options: RunOptions
    contracts: dict[str, ResolvedContract]
    results: list[CaseResult]
    requests: dict[ItemKey, list[Request]]
    responses: dict[str, Response | ModelCallError]
    executor: Executor
    semantic: Any
    logits: dict[ItemKey, LogitDrift]
    app_recording: set[ItemKey]
    perturbed: dict[ItemKey, list[tuple[str, Request]]]
    _golden_passes: dict[tuple[str, str], int]
    _app_mismatch: dict[tuple[str, str], str]

    if TYPE_CHECKING:  # provided by LlmSwapSession
        def golden(self, key: ItemKey) -> GoldenCase | None: ...
        def _contract_case(self, key: ItemKey) -> tuple[ResolvedContract, Case]: ...
        def _candidate(self, name: str) -> ModelSpec: ...
        def _min_pass_rate(self, resolved: ResolvedContract) -> float | None: ...
        def _record(self, key: ItemKey, samples: list[dict[str, Any]],
                    perturbed: dict[str, dict[str, Any]] | None = None) -> None: ...

    def run_item(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Run the contract's checks for one item, record the outcome, raise if the item fails."""
        if key.case_id == ALL_CASES:
            self._run_statistical(key, fn, kwargs)
        else:
            self._run_case(key, fn, kwargs)

    def _run_statistical(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Every case of the contract on one model row, judged together on the confidence bound of the rate."""
        contract = self.contracts[key.nodeid]
        start = len(self.results)
        for case in contract.cases:
            call = {**kwargs, "case": dict(case.variables)} if "case" in kwargs else dict(kwargs)
            try:
                self._run_case(ItemKey(key.nodeid, case.id, key.model), fn, call)
            except (Exception, pytest.fail.Exception):
                pass  # the case's outcome is in its result; the item is judged on all of them below
        settings = self.options.settings
        verdict = statistical_verdict(self.results[start:], self._min_pass_rate(contract) or 0.0,
                                      contract.contract.max_regression_rate, settings.alpha,
                                      settings.max_failed_call_rate)
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)

    def _run_case(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        app = self.contracts[key.nodeid].contract.app
        if key.model is None:
            (self._run_app_incumbent if app else self._run_incumbent)(key, fn, kwargs)
        else:
            (self._run_app_candidate if app else self._run_candidate)(key, fn, kwargs)

    def _run_incumbent(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        contract, case = self._contract_case(key)
        result = self._result(key)
        if key in self.requests:
            answers = [self.responses.get(r.key) for r in self.requests[key]]
            perturbed = self._perturbed_answers(key)
            errors = [a for a in (*answers, *perturbed.values()) if not isinstance(a, Response)]
            if errors:
                result.call_error = str(errors[0])
                self._fail(result, f"recording failed: {errors[0]}")
            responses = [a for a in answers if isinstance(a, Response)]
        else:
            golden = self._require_golden(key, case, result)
            responses = golden.responses
            perturbed = self._recorded_perturbed(key, case, golden, result)
        outcomes = check_goldens(make_check(contract, case.messages[-1][1], fn, kwargs), responses)
        result.golden = [dict(r.to_dict(), passed=o.passed) for r, o in zip(responses, outcomes)]
        for sample in result.golden[1:]:
            sample.pop("logprobs", None)  # the first sample's serve logit drift; K copies would bloat the file
        result.golden_passes = sum(o.passed for o in outcomes)
        result.golden_invariance = self._invariance(contract, responses[0].text, perturbed)
        if key in self.requests:
            hashes = {v.label: v.prompt_hash for v in case.variants}
            self._record(key, result.golden, {label: {"prompt_hash": hashes[label], "sample": _without_logprobs(a)}
                                              for label, a in perturbed.items() if isinstance(a, Response)})
        failures = [(i, o.failure) for i, o in enumerate(outcomes) if o.failure is not None]
        result.passed = not failures
        if failures:
            i, exc = failures[0]
            result.check_message = describe(exc)
            if len(outcomes) > 1:
                exc.args = (f"sample {i + 1} of {len(outcomes)}: {describe(exc)}",)
            raise exc

    def _run_candidate(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        contract, case = self._contract_case(key)
        result = self._result(key)
        golden = self._require_golden(key, case, result)
        goldens = golden.responses
        result.golden = golden.samples
        check = make_check(contract, case.messages[-1][1], fn, kwargs)
        case_key = (key.nodeid, key.case_id)
        if case_key not in self._golden_passes:  # one check of the goldens serves every candidate
            self._golden_passes[case_key] = sum(o.passed for o in check_goldens(check, goldens))
        result.golden_passes = self._golden_passes[case_key]
        answer = self.responses.get(self.requests[key][0].key)
        if not isinstance(answer, Response):
            result.call_error = str(answer)
            self._fail(result, f"model call failed: {answer}")
        result.output = answer.to_dict()
        if answer.truncated:
            result.notes["truncated"] = "generation hit the token limit (max_tokens / max_new_tokens)"
        result.invariance = self._invariance(contract, answer.text, self._perturbed_answers(key))
        result.golden_invariance = self._invariance(contract, goldens[0].text, {
            label: Response.from_dict(golden.perturbed[label]["sample"]) for label in self._current(case, golden)})
        judgement = judge_candidate(
            check, goldens, self._golden_passes[case_key], answer, tolerance=contract.contract.tolerance,
            json_output=contract.contract.output == "json", semantic=self.semantic,
            extra=self._logit_scorers(key))
        line = invariance.beyond_tolerance(result.invariance, contract.contract.tolerance.invariance)
        if line:  # not a drift from the golden: the model against itself, judged beside the drift tolerances
            judgement.exceeded.append(line)
            judgement.exceeded_metrics.append("invariance")
        self._judged(result, judgement)

    def _perturbed_answers(self, key: ItemKey) -> dict[str, Response | ModelCallError | None]:
        """This run's answers to the item's perturbed inputs, by label."""
        return {label: self.responses.get(r.key) for label, r in self.perturbed.get(key, [])}

    @staticmethod
    def _current(case: Case, golden: GoldenCase) -> list[str]:
        """Labels of the case's perturbed inputs the golden has an answer to."""
        missing = set(invariance.unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed))
        return [v.label for v in case.variants if v.label not in missing]

    def _recorded_perturbed(self, key: ItemKey, case: Case, golden: GoldenCase,
                            result: CaseResult) -> dict[str, Response | ModelCallError | None]:
        """The golden's answers to the case's perturbed inputs; a replay fails, saying how to record them, when
        the golden has none for some (the contract's ``invariant`` changed since it was recorded)."""
        missing = invariance.unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed)
        if missing:
            self._fail(result, f"golden for case {key.case_id!r} has no answer to the perturbed input(s) "
                               f"{', '.join(missing)}; record them with: {self.options.record_command} {key.nodeid}")
        return {v.label: Response.from_dict(golden.perturbed[v.label]["sample"]) for v in case.variants}

    @staticmethod
    def _invariance(contract: ResolvedContract, base: str,
                    answers: dict[str, Response | ModelCallError | None]) -> list[dict[str, Any]]:
        """Each perturbed answer's outcome against ``base``, the same model's unperturbed answer."""
        declared = contract.contract.invariance
        if declared is None:
            return []
        return [invariance.outcome(label, base, answer, declared) for label, answer in answers.items()]

    def _judged(self, result: CaseResult, judgement: Judgement) -> None:
        """Keep a candidate item's judgement in its result; fail the item on a failed check or broken tolerance."""
        drift = judgement.drift
        result.candidate_passed = judgement.candidate.passed
        result.flip = judgement.flip
        result.metrics, result.floors, result.beyond_noise = drift.metrics, drift.floors, drift.beyond_noise
        result.notes.update(drift.notes)
        result.exceeded, result.exceeded_metrics = judgement.exceeded, judgement.exceeded_metrics
        result.passed = judgement.candidate.passed and not result.exceeded
        if judgement.candidate.failure is not None:
            result.check_message = describe(judgement.candidate.failure)
            raise judgement.candidate.failure
        if result.exceeded:
            pytest.fail("drift beyond tolerance: " + "; ".join(result.exceeded), pytrace=False)

    def _run_app_incumbent(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """A contract without a prompt on the incumbent: record its application's calls, or replay them."""
        contract, case = self._contract_case(key)
        result = self._result(key)
        if key in self.app_recording:
            answer, model = self._incumbent_answer(contract.contract.allow_empty)
            runs = [appcalls.record(fn, kwargs, answer, model, contract.contract.allow_empty, self._stored_calls(i))
                    for i in range(self.options.samples)]
            errors = [r.call_error for r in runs if r.call_error]
            if errors:
                result.call_error = errors[0]
                self._fail(result, f"recording failed: {errors[0]}")
            samples = [dict(appcalls.sample(r, contract.contract.output), passed=r.passed) for r in runs]
            self._record(key, samples)
        else:
            golden = self._require_golden(key, case, result)
            runs = [appcalls.replay(fn, kwargs, s, self._app_record_command(key)) for s in golden.samples]
            samples = [dict(s, passed=r.passed) for s, r in zip(golden.samples, runs)]
        result.golden = samples
        result.prompt = appcalls.first_prompt(runs[0])
        result.notes["calls"] = appcalls.calls_note(runs[0])
        result.golden_passes = sum(r.passed for r in runs)
        failures = [r.failure for r in runs if r.failure is not None]
        result.passed = not failures
        if failures and appcalls.is_mismatch(failures[0]):  # one line: the call, and the command to re-record
            self._fail(result, str(failures[0]))
        if failures:
            result.check_message = describe(failures[0])
            raise failures[0]

    def _app_record_command(self, key: ItemKey) -> str:
        """The command that re-records an application contract: ``all``, since its goldens are not stale
        by prompt (the prompts live in the application); without ``--incumbent-model`` the app's model answers."""
        spec = self.options.incumbent
        incumbent = f" --incumbent-model {spec.name}" if spec is not None else ""
        return f"pytest{incumbent} --llmswap-record all {key.nodeid}"

    def _run_app_candidate(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """A contract without a prompt on a candidate: the application's calls go to the candidate."""
        contract, case = self._contract_case(key)
        result = self._result(key)
        golden = self._require_golden(key, case, result)
        result.golden = golden.samples
        case_key = (key.nodeid, key.case_id)
        if case_key not in self._golden_passes:  # the goldens' checks: the body replayed on each sample, offline
            command = self._app_record_command(key)
            replays = [appcalls.replay(fn, kwargs, s, command) for s in golden.samples]
            self._golden_passes[case_key] = sum(r.passed for r in replays)
            mismatch = next((r.failure for r in replays if appcalls.is_mismatch(r.failure)), None)
            if mismatch is not None:
                self._app_mismatch[case_key] = str(mismatch)
        result.golden_passes = self._golden_passes[case_key]
        if case_key in self._app_mismatch:  # the application changed: its golden says nothing about a candidate
            self._fail(result, self._app_mismatch[case_key])
        spec = self._candidate(key.model)  # type: ignore[arg-type]
        cache = self.executor.usable_cache()
        answer = appcalls.stored(candidate_answer(spec, self.executor.backend(spec), self.options.execution,
                                                  contract.contract.allow_empty),
                                 appcalls.StoredCalls(cache, spec.identity) if cache is not None else None)
        run = appcalls.candidate(fn, kwargs, answer, spec.name, contract.contract.allow_empty)
        if run.call_error:
            result.call_error = run.call_error
            self._fail(result, f"model call failed: {run.call_error}")
        result.output = appcalls.sample(run, contract.contract.output)
        result.prompt = appcalls.first_prompt(run)
        result.notes["calls"] = appcalls.calls_note(run)
        judgement = judge_candidate(
            lambda output, reference: CheckOutcome(run.failure), golden.responses, self._golden_passes[case_key],
            Response.from_dict(result.output), tolerance=contract.contract.tolerance,
            json_output=contract.contract.output == "json", semantic=self.semantic,
            extra=[appcalls.tool_scorer(golden.samples[0], run)])
        self._judged(result, judgement)

    def _incumbent_answer(self, allow_empty: bool) -> tuple[Any, str]:
        """Who answers an application's calls when recording: ``--incumbent-model``, else the app's own model."""
        spec = self.options.incumbent
        if spec is None:
            return None, "the application's model"
        return candidate_answer(spec, self.executor.backend(spec), self.options.execution, allow_empty), spec.name

    def _stored_calls(self, sample: int) -> appcalls.StoredCalls | None:
        """Where a recording keeps sample ``sample``'s calls as they arrive: by the incumbent, or the app's client."""
        cache = self.executor.usable_cache()
        if cache is None:
            return None
        spec = self.options.incumbent
        return appcalls.StoredCalls(cache, spec.identity if spec else "application", sample,
                                    this_run_only=self.options.record == "all")

    def _require_golden(self, key: ItemKey, case: Case, result: CaseResult) -> GoldenCase:
        """The item's golden; the item fails, saying how to record one, when there is none or it is stale."""
        golden = self.golden(key)
        if golden is None:
            against = "" if key.model is None else f" to compare {key.model} against"
            self._fail(result, f"no golden for case {key.case_id!r}{against}; record it with: "
                               f"{self.options.record_command} {key.nodeid}")
        if self._contract_case(key)[0].stale(case, golden):
            message = (f"stale golden for case {key.case_id!r}: the prompt or its params changed since it was "
                       f"recorded; re-record it with: {self.options.record_command} {key.nodeid}")
            if self.options.settings.stale_goldens == "fail":
                self._fail(result, message + " (or set stale_goldens = \"warn\" in [tool.llmswap])")
            result.notes["golden"] = message
        return golden

    def _logit_scorers(self, key: ItemKey) -> list[ExtraScorer]:
        """The item's teacher-forced KL and top-1 agreement, computed for the whole run in :meth:`_prepare`."""
        drift = self.logits.get(key)
        if drift is None:
            return []

        def score(golden: Response) -> tuple[dict[str, float | None], dict[str, str]]:
            notes = {} if drift.applicable else {"kl": drift.reason, "top1": drift.reason}
            return {"kl": drift.mean_kl, "kl_max": drift.max_kl, "top1": drift.top1_agreement}, notes

        return [score]

    def _result(self, key: ItemKey) -> CaseResult:
        contract, case = self._contract_case(key)
        result = CaseResult(contract=key.nodeid, case_id=key.case_id, candidate=key.model,
                            variables=case.variables, prompt=case.messages[-1][1] if case.messages else "")
        self.results.append(result)
        return result

    @staticmethod
    def _fail(result: CaseResult, message: str) -> Any:
        result.passed = False
        result.failure = message
        pytest.fail(message, pytrace=False)


def _without_logprobs(answer: Response) -> dict[str, Any]:
    """A perturbed answer as the golden keeps it: its log-probs serve no drift metric, so they are left out."""
    sample = answer.to_dict()
    sample.pop("logprobs", None)
    return sample
