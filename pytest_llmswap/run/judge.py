"""Judging one test item into an outcome: the glue between a contract's test function and ``drift.judge``.

A :class:`Judge` runs a case on the incumbent (record or replay) or on a candidate, for prompt contracts and
application contracts, alone or as part of a statistical item, and returns a
:class:`~pytest_llmswap.run.outcome.CaseOutcome`. It reads the run's state and raises nothing for a failed
case: ``plugin.py`` turns the outcome into pytest's failure.

Each path collects its case's fields in a draft (a plain dict of :class:`CaseResult`'s fields) and builds the
frozen result once, at its end: passed, broken, check failed, beyond tolerance, failed call or not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..intercept import appcalls

from ..contract import invariance
from ..verdict.aggregate import statistical_verdict
from ..contract.checks import Check, describe, make_check
from ..contract.decorator import Case, ResolvedContract
from ..drift.judge import CheckOutcome, ExtraScorer, Judgement, check_goldens, judge_candidate
from ..golden import GoldenCase
from ..intercept import candidate_answer
from ..results import CaseResult, Unadapted
from ..types import ModelCallError, Request, Response, Sample, public_params
from .keys import ALL_CASES, ItemKey
from .outcome import CaseOutcome, ItemOutcome, Status
from .state import RunState

#: A case's result while it is judged: the :class:`CaseResult` fields known so far, built once at the end.
_Draft = dict[str, Any]


class _Stop(Exception):
    """Ends judging a case early with one line: a failed call, or no usable golden."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Judge:
    """Judges the items of one run; it keeps only what one check of a case's goldens serves every candidate."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._golden_passes: dict[tuple[str, str], int] = {}
        self._app_mismatch: dict[tuple[str, str], str] = {}  # application cases whose golden no longer replays

    def item(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> ItemOutcome:
        """Run the contract's checks for one item: one case, or every case of a statistical row."""
        if key.case_id == ALL_CASES:
            return self._statistical(key, fn, kwargs)
        return ItemOutcome.of_case(self.case(key, fn, kwargs))

    def _statistical(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> ItemOutcome:
        """Every case of the contract on one model row, judged together on the confidence bound of the rate."""
        contract = self.state.contracts[key.nodeid]
        cases = tuple(self.case(ItemKey(key.nodeid, case.id, key.model), fn,
                                {**kwargs, "case": dict(case.variables)} if "case" in kwargs else dict(kwargs))
                      for case in contract.cases)
        settings = self.state.options.settings
        verdict = statistical_verdict([c.result for c in cases], self.state.min_pass_rate(contract) or 0.0,
                                      contract.contract.max_regression_rate, settings.alpha,
                                      settings.max_failed_call_rate)
        return ItemOutcome(cases, message=None if verdict.passed else verdict.message)

    def case(self, key: ItemKey, fn: Callable[..., Any], kwargs: dict[str, Any]) -> CaseOutcome:
        """One case on one model row."""
        app = self.state.contracts[key.nodeid].contract.app
        if key.model is None:
            run = self._app_incumbent if app else self._incumbent
        else:
            run = self._app_candidate if app else self._candidate
        draft = self._draft(key)
        try:
            return run(key, draft, fn, kwargs)
        except _Stop as stop:
            return _not_judged(draft, stop.status, stop.message)

    def _incumbent(self, key: ItemKey, draft: _Draft, fn: Callable[..., Any], kwargs: dict[str, Any]) -> CaseOutcome:
        contract, case = self.state.contract_case(key)
        requests = self.state.requests
        recording = None
        if key in requests:
            answers = [self.state.answer(r) for r in requests[key]]
            perturbed = self._perturbed_answers(key)
            errors = [a for a in (*answers, *perturbed.values()) if not isinstance(a, Response)]
            if errors:
                draft["call_error"] = str(errors[0])
                raise _Stop(Status.FAILED_CALL, f"recording failed: {errors[0]}")
            responses = [a for a in answers if isinstance(a, Response)]
        else:
            golden = self._require_golden(key, contract, case, draft["notes"])
            responses = golden.responses
            perturbed = self._recorded_perturbed(key, case, golden)
        outcomes = check_goldens(make_check(contract, case.messages[-1][1], fn, kwargs), responses)
        # The first sample's log-probs serve logit drift; K copies would bloat the file.
        samples = [Sample.of(r if i == 0 else replace(r, logprobs=None), passed=o.passed)
                   for i, (r, o) in enumerate(zip(responses, outcomes))]
        draft.update(golden=samples, golden_passes=sum(o.passed for o in outcomes),
                     golden_invariance=_invariance(contract, responses[0].text, perturbed))
        if key in requests:
            hashes = {v.label: v.prompt_hash for v in case.variants}
            recording = self._recording(key, samples, {
                label: {"prompt_hash": hashes[label], "sample": _without_logprobs(a)}
                for label, a in perturbed.items() if isinstance(a, Response)})
        failures = [(i, o.failure) for i, o in enumerate(outcomes) if o.failure is not None]
        if not failures:
            return _passed(draft, recording)
        i, exc = failures[0]
        message = describe(exc)
        if len(outcomes) > 1:
            exc.args = (f"sample {i + 1} of {len(outcomes)}: {message}",)
        return _check_failed(draft, message, exc, recording)

    def _candidate(self, key: ItemKey, draft: _Draft, fn: Callable[..., Any], kwargs: dict[str, Any]) -> CaseOutcome:
        contract, case = self.state.contract_case(key)
        golden = self._require_golden(key, contract, case, draft["notes"])
        goldens = _samples(golden)  # Responses too: read once, checked, scored and kept
        check = make_check(contract, case.messages[-1][1], fn, kwargs)
        case_key = (key.nodeid, key.case_id)
        if case_key not in self._golden_passes:  # one check of the goldens serves every candidate
            self._golden_passes[case_key] = sum(o.passed for o in check_goldens(check, goldens))
        golden_passes = self._golden_passes[case_key]
        draft.update(golden=goldens, golden_passes=golden_passes)
        request = self.state.plan.unadapted.get(key) if self.state.plan else None
        if request is not None:  # measured rework: the same case asked with the incumbent's own prompt
            unadapted = self._unadapted(contract, check, goldens, golden_passes, request)
            draft["unadapted"] = unadapted
            draft["notes"]["incumbent's prompt"] = _unadapted_note(unadapted)
            draft["prompt"] = self.state.requests[key][0].messages[-1][1]  # the adapted prompt, as asked
            check = make_check(contract, draft["prompt"], fn, kwargs)
        answer = self.state.answer(self.state.requests[key][0])
        if not isinstance(answer, Response):
            draft["call_error"] = str(answer)
            raise _Stop(Status.FAILED_CALL, f"model call failed: {answer}")
        draft["output"] = Sample.of(answer)
        if answer.truncated:
            draft["notes"]["truncated"] = "generation hit the token limit (max_tokens / max_new_tokens)"
        judgement = self._judgement(contract, check, goldens, golden_passes, answer, self._logit_scorers(key))
        if contract.contract.invariance is not None:
            perturbed = _invariance(contract, answer.text, self._perturbed_answers(key))
            draft.update(invariance=perturbed, golden_invariance=_invariance(contract, goldens[0].text, {
                label: Response.from_dict(golden.perturbed[label]["sample"]) for label in _current(case, golden)}))
            line = invariance.beyond_tolerance(perturbed, contract.contract.tolerance.invariance)
            if line:  # not a drift from the golden: the model against itself, judged beside the drift tolerances
                judgement.exceeded.append(line)
                judgement.exceeded_metrics.append("invariance")
        return _judged(draft, judgement)

    def _judgement(self, contract: ResolvedContract, check: Check, goldens: Sequence[Response],
                   golden_passes: int, answer: Response, extra: list[ExtraScorer]) -> Judgement:
        return judge_candidate(check, goldens, golden_passes, answer, tolerance=contract.contract.tolerance,
                               json_output=contract.contract.output == "json", semantic=self.state.answers.semantic,
                               extra=extra)

    def _unadapted(self, contract: ResolvedContract, check: Check, goldens: Sequence[Response],
                   golden_passes: int, request: Request) -> Unadapted:
        """The candidate's answer to the incumbent's prompt, judged as the row is (teacher-forced drift aside)."""
        prompt = request.messages[-1][1]
        answer = self.state.answer(request)
        if not isinstance(answer, Response):
            return Unadapted(prompt=prompt, call_error=str(answer))
        judgement = self._judgement(contract, check, goldens, golden_passes, answer, [])
        return Unadapted(prompt=prompt, output=Sample.of(answer), candidate_passed=judgement.candidate.passed,
                         flip=judgement.flip, exceeded=judgement.exceeded, exceeded_metrics=judgement.exceeded_metrics,
                         check_message=_check_message(judgement))

    def _perturbed_answers(self, key: ItemKey) -> dict[str, Response | ModelCallError | None]:
        """This run's answers to the item's perturbed inputs, by label."""
        pairs = self.state.plan.perturbed.get(key, []) if self.state.plan else []
        return {label: self.state.answer(r) for label, r in pairs}

    def _recorded_perturbed(self, key: ItemKey, case: Case,
                            golden: GoldenCase) -> dict[str, Response | ModelCallError | None]:
        """The golden's answers to the case's perturbed inputs; a replay fails, saying how to record them, when
        the golden has none for some (the contract's ``invariant`` changed since it was recorded)."""
        missing = invariance.unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed)
        if missing:
            raise _Stop(Status.NOT_JUDGED, f"golden for case {key.case_id!r} has no answer to the perturbed input(s) "
                                           f"{', '.join(missing)}; record them with: "
                                           f"{self.state.options.record_command} {key.nodeid}")
        return {v.label: Response.from_dict(golden.perturbed[v.label]["sample"]) for v in case.variants}

    def _app_incumbent(self, key: ItemKey, draft: _Draft, fn: Callable[..., Any],
                       kwargs: dict[str, Any]) -> CaseOutcome:
        """A contract without a prompt on the incumbent: record its application's calls, or replay them."""
        contract, case = self.state.contract_case(key)
        recording = None
        if self.state.plan is not None and key in self.state.plan.app_recording:
            answer, model = self._incumbent_answer(contract.contract.allow_empty)
            runs = [appcalls.record(fn, kwargs, answer, model, contract.contract.allow_empty, self._stored_calls(i))
                    for i in range(self.state.options.samples)]
            errors = [r.call_error for r in runs if r.call_error]
            if errors:
                draft["call_error"] = errors[0]
                raise _Stop(Status.FAILED_CALL, f"recording failed: {errors[0]}")
            samples = [appcalls.sample(r, contract.contract.output, passed=r.passed) for r in runs]
            recording = self._recording(key, samples)
        else:
            golden = self._require_golden(key, contract, case, draft["notes"])
            recorded = _samples(golden)
            runs = [appcalls.replay(fn, kwargs, s, self._app_record_command(key)) for s in recorded]
            samples = [replace(s, passed=r.passed) for s, r in zip(recorded, runs)]
        draft.update(golden=samples, prompt=appcalls.first_prompt(runs[0]), golden_passes=sum(r.passed for r in runs))
        draft["notes"]["calls"] = appcalls.calls_note(runs[0])
        failures = [r.failure for r in runs if r.failure is not None]
        if not failures:
            return _passed(draft, recording)
        if appcalls.is_mismatch(failures[0]):  # one line: the call, and the command to re-record
            return _not_judged(draft, Status.NOT_JUDGED, str(failures[0]), recording)
        return _check_failed(draft, describe(failures[0]), failures[0], recording)

    def _app_record_command(self, key: ItemKey) -> str:
        """The command that re-records an application contract: ``all``, since its goldens are not stale
        by prompt (the prompts live in the application); without ``--incumbent-model`` the app's model answers."""
        spec = self.state.options.incumbent
        incumbent = f" --incumbent-model {spec.name}" if spec is not None else ""
        return f"pytest{incumbent} --llmswap-record all {key.nodeid}"

    def _app_candidate(self, key: ItemKey, draft: _Draft, fn: Callable[..., Any],
                       kwargs: dict[str, Any]) -> CaseOutcome:
        """A contract without a prompt on a candidate: the application's calls go to the candidate."""
        contract, case = self.state.contract_case(key)
        goldens = _samples(self._require_golden(key, contract, case, draft["notes"]))
        case_key = (key.nodeid, key.case_id)
        if case_key not in self._golden_passes:  # the goldens' checks: the body replayed on each sample, offline
            command = self._app_record_command(key)
            replays = [appcalls.replay(fn, kwargs, s, command) for s in goldens]
            self._golden_passes[case_key] = sum(r.passed for r in replays)
            mismatch = next((r.failure for r in replays if appcalls.is_mismatch(r.failure)), None)
            if mismatch is not None:
                self._app_mismatch[case_key] = str(mismatch)
        draft.update(golden=goldens, golden_passes=self._golden_passes[case_key])
        if case_key in self._app_mismatch:  # the application changed: its golden says nothing about a candidate
            raise _Stop(Status.NOT_JUDGED, self._app_mismatch[case_key])
        spec = self.state.candidate(key.model)  # type: ignore[arg-type]
        executor = self.state.executor
        cache = executor.usable_cache()
        answer = appcalls.stored(candidate_answer(spec, executor.backend(spec), self.state.options.execution,
                                                  contract.contract.allow_empty),
                                 appcalls.StoredCalls(cache, spec.identity) if cache is not None else None)
        run = appcalls.candidate(fn, kwargs, answer, spec.name, contract.contract.allow_empty)
        if run.call_error:
            draft["call_error"] = run.call_error
            raise _Stop(Status.FAILED_CALL, f"model call failed: {run.call_error}")
        sample = appcalls.sample(run, contract.contract.output)
        draft.update(output=sample, prompt=appcalls.first_prompt(run))
        draft["notes"]["calls"] = appcalls.calls_note(run)
        judgement = self._judgement(contract, lambda output, reference: CheckOutcome(run.failure), goldens,
                                    self._golden_passes[case_key], sample, [appcalls.tool_scorer(goldens[0], run)])
        return _judged(draft, judgement)

    def _incumbent_answer(self, allow_empty: bool) -> tuple[Any, str]:
        """Who answers an application's calls when recording: ``--incumbent-model``, else the app's own model."""
        spec = self.state.options.incumbent
        if spec is None:
            return None, "the application's model"
        executor = self.state.executor
        return candidate_answer(spec, executor.backend(spec), self.state.options.execution, allow_empty), spec.name

    def _stored_calls(self, sample: int) -> appcalls.StoredCalls | None:
        """Where a recording keeps sample ``sample``'s calls as they arrive: by the incumbent, or the app's client."""
        cache = self.state.executor.usable_cache()
        if cache is None:
            return None
        spec = self.state.options.incumbent
        return appcalls.StoredCalls(cache, spec.identity if spec else "application", sample,
                                    this_run_only=self.state.options.record == "all")

    def _require_golden(self, key: ItemKey, contract: ResolvedContract, case: Case,
                        notes: dict[str, str]) -> GoldenCase:
        """The item's golden; the case is not judged, the outcome saying how to record one, when there is none
        or it is stale (a stale golden under ``stale_goldens = "warn"`` is a line in the case's ``notes``)."""
        options = self.state.options
        golden = self.state.golden(key)
        if golden is None:
            against = "" if key.model is None else f" to compare {key.model} against"
            raise _Stop(Status.NOT_JUDGED, f"no golden for case {key.case_id!r}{against}; record it with: "
                                           f"{options.record_command} {key.nodeid}")
        if contract.stale(case, golden):
            message = (f"stale golden for case {key.case_id!r}: the prompt or its params changed since it was "
                       f"recorded; re-record it with: {options.record_command} {key.nodeid}")
            if options.settings.stale_goldens == "fail":
                raise _Stop(Status.NOT_JUDGED, message + " (or set stale_goldens = \"warn\" in [tool.llmswap])")
            notes["golden"] = message
        return golden

    def _recording(self, key: ItemKey, samples: list[Sample],
                   perturbed: dict[str, dict[str, Any]] | None = None) -> GoldenCase:
        """The golden an incumbent row records for its case."""
        contract, case = self.state.contract_case(key)
        options = self.state.options
        spec = options.incumbent
        model = self.state.executor.backend(spec).resolved_model_id() if spec else samples[0].model
        params = {**(spec.param_dict if spec else {}), **contract.contract.params}
        return GoldenCase(prompt_hash=case.prompt_hash, variables=case.variables,
                          messages=[list(m) for m in case.messages], model=model, params=public_params(params),
                          samples=[s.to_dict() for s in samples], recorded_at=self.state.started_at,
                          recorded_by=options.incumbent_text,
                          perturbed=perturbed or {})

    def _logit_scorers(self, key: ItemKey) -> list[ExtraScorer]:
        """The item's teacher-forced KL and top-1 agreement, computed for the whole run before the first item."""
        drift = self.state.answers.logits.get(key)
        if drift is None:
            return []

        def score(golden: Response) -> tuple[dict[str, float | None], dict[str, str]]:
            notes = {} if drift.applicable else {"kl": drift.reason, "top1": drift.reason}
            return {"kl": drift.mean_kl, "kl_max": drift.max_kl, "top1": drift.top1_agreement}, notes

        return [score]

    def _draft(self, key: ItemKey) -> _Draft:
        """The fields of the item's result known before it is judged (with ``notes`` to add to)."""
        case = self.state.contract_case(key)[1]
        return {"contract": key.nodeid, "case_id": key.case_id, "candidate": key.model, "variables": case.variables,
                "prompt": case.messages[-1][1] if case.messages else "", "notes": {}}


def _passed(draft: _Draft, recording: GoldenCase | None) -> CaseOutcome:
    """An incumbent case whose checks passed on every sample."""
    return CaseOutcome(Status.PASSED, CaseResult(**draft, passed=True), recording=recording)


def _check_failed(draft: _Draft, message: str, failure: BaseException, recording: GoldenCase | None) -> CaseOutcome:
    """An incumbent case whose checks failed: ``message`` (the first failure, described) kept in its result."""
    return CaseOutcome(Status.CHECK_FAILED, CaseResult(**draft, check_message=message), (message,), failure,
                       recording)


def _check_message(judgement: Judgement) -> str | None:
    """The candidate's failed check, described (None when its checks passed)."""
    failure = judgement.candidate.failure
    return None if failure is None else describe(failure)


def _judged(draft: _Draft, judgement: Judgement) -> CaseOutcome:
    """A candidate case's judgement kept in its result, and its outcome: a failed check, else broken tolerances."""
    drift, candidate = judgement.drift, judgement.candidate
    draft["notes"].update(drift.notes)
    result = CaseResult(**draft, candidate_passed=candidate.passed, check_message=_check_message(judgement),
                        flip=judgement.flip, metrics=drift.metrics, floors=drift.floors,
                        beyond_noise=drift.beyond_noise, exceeded=judgement.exceeded,
                        exceeded_metrics=judgement.exceeded_metrics,
                        passed=candidate.passed and not judgement.exceeded)
    if candidate.failure is not None:
        status = Status.BROKEN if result.flip == "regression" else Status.CHECK_FAILED
        return CaseOutcome(status, result, (result.check_message,), candidate.failure)
    if result.exceeded:
        return CaseOutcome(Status.BEYOND_TOLERANCE, result, tuple(result.exceeded))
    return CaseOutcome(Status.PASSED, result)


def _unadapted_note(found: Unadapted) -> str:
    """How the candidate did on the incumbent's own prompt, in the case's notes (the matrix shows and searches them)."""
    if found.held:
        return "held on the incumbent's prompt too"
    why = found.call_error or found.check_message or (found.exceeded[0] if found.exceeded else "failed")
    return f"on the incumbent's prompt: {why}"


def _not_judged(draft: _Draft, status: Status, message: str,
                recording: GoldenCase | None = None) -> CaseOutcome:
    """A case that failed before (or instead of) its checks (a failed call, no usable golden): one line, kept
    as the result's failure, with whatever the draft held when it stopped."""
    return CaseOutcome(status, CaseResult(**draft, passed=False, failure=message), (message,), recording=recording)


def _samples(golden: GoldenCase) -> list[Sample]:
    """A golden's samples as the case's result keeps them."""
    return [Sample.from_dict(s) for s in golden.samples]


def _current(case: Case, golden: GoldenCase) -> list[str]:
    """Labels of the case's perturbed inputs the golden has an answer to."""
    missing = set(invariance.unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed))
    return [v.label for v in case.variants if v.label not in missing]


def _invariance(contract: ResolvedContract, base: str,
                answers: dict[str, Response | ModelCallError | None]) -> list[dict[str, Any]]:
    """Each perturbed answer's outcome against ``base``, the same model's unperturbed answer."""
    declared = contract.contract.invariance
    if declared is None:
        return []
    return [invariance.outcome(label, base, answer, declared) for label, answer in answers.items()]


def _without_logprobs(answer: Response) -> dict[str, Any]:
    """A perturbed answer as the golden keeps it: its log-probs serve no drift metric, so they are left out."""
    sample = answer.to_dict()
    sample.pop("logprobs", None)
    return sample
