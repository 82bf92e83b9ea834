"""What the stages of a run share: its options, contracts, plan, answers, goldens and case results.

The stages (:mod:`.plan`, :mod:`.execute`, :mod:`.judge`, :mod:`.finish`) read a :class:`RunState` and
return values; only ``plugin.py`` stores those values in it, and :meth:`RunState.keep` is the one way a
judged case enters it. Nothing here knows pytest.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contract.decorator import Case, ResolvedContract, adapt
from ..golden import GoldenCase, GoldenStore
from ..models.cache import ResponseCache
from ..models.executor import Executor
from ..models.throughput_store import Calibration
from ..results import CaseResult, RunResults
from ..types import ModelCallError, ModelSpec, Request, Response
from .keys import ALL_CASES, ItemKey, RunOptions
from .outcome import CaseOutcome

if TYPE_CHECKING:
    from ..drift.logits import LogitDrift
    from ..drift.semantic import SemanticScorer


@dataclass(frozen=True)
class Plan:
    """Every request the selected items need, made before any model is called (:func:`.plan.plan`)."""

    requests: dict[ItemKey, list[Request]] = field(default_factory=dict)
    #: invariance: each item's perturbed inputs as ``(label, request)``
    perturbed: dict[ItemKey, list[tuple[str, Request]]] = field(default_factory=dict)
    #: application items that record their calls in the test body
    app_recording: frozenset[ItemKey] = frozenset()
    #: one line each, shown as the run starts (a tolerance that cannot judge these goldens)
    warnings: tuple[str, ...] = ()
    #: measured rework: a candidate item with an adapted prompt is also asked the incumbent's prompt
    unadapted: dict[ItemKey, Request] = field(default_factory=dict)


@dataclass(frozen=True)
class Answers:
    """What :func:`.execute.execute` got: the models' answers and what is computed once for the whole run."""

    responses: dict[str, Response | ModelCallError] = field(default_factory=dict)
    throughput: dict[str, Calibration] = field(default_factory=dict)
    logits: dict[ItemKey, LogitDrift] = field(default_factory=dict)
    semantic: SemanticScorer | None = None
    warnings: list[str] = field(default_factory=list)


class RunState:
    """One pytest session's (or one xdist worker's) run: the values the stages returned, and the case results."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._candidates = {c.name: c for c in options.candidates}
        self.store = GoldenStore()
        self.contracts: dict[str, ResolvedContract] = {}
        self._adapted: dict[tuple[str, str], ResolvedContract] = {}  # (candidate, node id): its adapted prompt
        self.plan: Plan | None = None  # None until the selected items are planned
        self.answers = Answers()
        self.results: list[CaseResult] = []
        # --llmswap-no-cache still needs a store the run's xdist workers share, or each would call every model.
        cache = (ResponseCache(options.cache_dir, options.run_id) if options.cache_dir
                 else ResponseCache.ephemeral(options.run_id))
        self.executor = Executor(cache, options.execution)
        self.absorbed: list[RunResults] = []  # the xdist workers' results, on the controller
        self.deselected = 0
        self.started_at = _now()

    # -- contracts --------------------------------------------------------------------------------------

    def add_contract(self, resolved: ResolvedContract) -> None:
        self.contracts[resolved.nodeid] = resolved

    @property
    def rows(self) -> list[str | None]:
        """The model rows each case gets: the incumbent's (replay or record) and one per candidate."""
        names = [c.name for c in self.options.candidates]
        return ([None] if self.options.record or not names else []) + names

    def min_pass_rate(self, resolved: ResolvedContract) -> float | None:
        """The contract's own ``min_pass_rate``, else the suite's (``min_pass_rate`` in [tool.llmswap]) unless the
        contract asks for ``per_case``."""
        own = resolved.contract
        if own.per_case:
            return None
        return own.min_pass_rate if own.min_pass_rate is not None else self.options.settings.min_pass_rate

    def contract_case(self, key: ItemKey) -> tuple[ResolvedContract, Case]:
        contract = self.contracts[key.nodeid]
        return contract, contract.case(key.case_id)

    def candidate(self, name: str) -> ModelSpec:
        return self._candidates[name]

    def case_on(self, key: ItemKey) -> Case:
        """The case as the item's model is asked it: rendered with the candidate's adapted prompt, if it has one
        (its ``prompts`` table names the contract by its id or name, or by node id)."""
        contract, case = self.contract_case(key)
        prompts = () if key.model is None else self.candidate(key.model).prompts
        template = next((t for name, t in prompts if name in (contract.key, key.nodeid)), None)
        if template is None:
            return case
        if (key.model, key.nodeid) not in self._adapted:
            self._adapted[(key.model, key.nodeid)] = adapt(contract, template)
        return self._adapted[(key.model, key.nodeid)].case(key.case_id)

    # -- goldens and answers ----------------------------------------------------------------------------

    @property
    def requests(self) -> dict[ItemKey, list[Request]]:
        return self.plan.requests if self.plan else {}

    def golden(self, key: ItemKey, plan: Plan | None = None,
               responses: Mapping[str, Response | ModelCallError] | None = None) -> GoldenCase | None:
        """The golden of the item's case: for a candidate row, this run's fresh recording when there is one
        (xdist workers then need not wait for each other's golden files), else the stored golden.

        ``plan`` and ``responses`` default to those the run keeps; execution passes its own before it returns.
        """
        contract = self.contracts[key.nodeid]
        plan = self.plan if plan is None else plan
        recording = (plan.requests.get(ItemKey(key.nodeid, key.case_id))
                     if plan is not None and key.model is not None else None)
        if recording:
            responses = self.answers.responses if responses is None else responses
            answers = [responses.get(r.key) for r in recording]
            if all(isinstance(a, Response) for a in answers):
                case = contract.case(key.case_id)
                return GoldenCase(prompt_hash=case.prompt_hash, variables=case.variables,
                                  messages=[list(m) for m in case.messages], model=answers[0].model, params={},
                                  samples=[a.to_dict() for a in answers if isinstance(a, Response)])
        return self.store.get(contract.module_path, contract.key, key.case_id)

    def answer(self, request: Request) -> Response | ModelCallError | None:
        return self.answers.responses.get(request.key)

    def primary_response(self, key: ItemKey) -> Response | None:
        """What the ``output`` fixture shows: the candidate's answer, the new recording, or the golden."""
        if key.case_id == ALL_CASES:
            return None  # bound per case while a statistical item runs
        if key in self.requests:
            answer = self.answer(self.requests[key][0])
            return answer if isinstance(answer, Response) else None
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def golden_response(self, key: ItemKey) -> Response | None:
        if key.model is None or key.case_id == ALL_CASES:
            return self.primary_response(key)
        golden = self.golden(key)
        return golden.responses[0] if golden else None

    def variables(self, key: ItemKey) -> dict[str, Any]:
        return {} if key.case_id == ALL_CASES else dict(self.contract_case(key)[1].variables)

    # -- judged cases -----------------------------------------------------------------------------------

    def keep(self, outcome: CaseOutcome) -> None:
        """Keep a judged case: its result, and the golden it recorded (written when the run ends)."""
        self.results.append(outcome.result)
        if outcome.recording is not None:
            contract, _ = self.contract_case(ItemKey(outcome.result.contract, outcome.result.case_id))
            self.store.put(contract.module_path, contract.key, outcome.result.case_id, outcome.recording)

    def close(self, *, owner: bool) -> None:
        """Close the response store; the process that created a run-only store (not an xdist worker) deletes it."""
        store = self.executor.cache
        if store is None:
            return
        if owner and self.options.cache_dir is None:
            store.remove()
        else:
            store.close()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
