"""Planning a run: the test items of each contract, and every request the selected items need.

Bad input found here stops the run with one line (:class:`~pytest_llmswap.run.keys.RunError`) before any
model is called.
"""

from __future__ import annotations

from ..contract.decorator import Case, ContractError, ResolvedContract
from ..drift.structured import semantic_on_structured
from ..golden import GoldenFormatError
from ..contract.invariance import unrecorded
from ..models.backends import kind_of
from .prepare import semantic_available
from ..types import ModelSpec, Request
from .keys import ALL_CASES, ItemKey, RunError
from .state import Plan, RunState


def items(state: RunState, resolved: ResolvedContract) -> list[tuple[ItemKey, str]]:
    """A contract's items as ``(key, test id)`` pairs for parametrisation.

    A statistical contract (``min_pass_rate``) is one item per model row; the others one per case and row.
    """
    if state.min_pass_rate(resolved) is not None:
        return [(ItemKey(resolved.nodeid, ALL_CASES, row), row or "all-cases") for row in state.rows]
    return [(ItemKey(resolved.nodeid, case.id, row), case.id if row is None else f"{case.id}-{row}")
            for case in resolved.cases for row in state.rows]


def plan(state: RunState, keys: list[ItemKey]) -> Plan:
    """Build every request the selected items need; check goldens are readable first."""
    options = state.options
    keys = _per_case(state, keys)
    try:
        for key in keys:
            state.golden(key)
    except GoldenFormatError as exc:
        raise RunError(str(exc)) from None
    # An adapted prompt that cannot be rendered is bad input: one line before any call.
    asked = {key: _case_on(state, key) for key in keys if key.model is not None}
    if options.candidates and semantic_required(state) and not semantic_available():
        raise RunError("a contract sets a 'semantic' tolerance but the semantic extra is not installed: "
                       "pip install 'pytest-llmswap[semantic]'")
    if options.candidates and not options.record:
        if keys and not any(state.golden(k) for k in keys):
            raise RunError("no goldens found for the selected contracts: record them first with "
                           f"{options.record_command}")
    _check_sampling(state, keys)
    requests: dict[ItemKey, list[Request]] = {}
    perturbed: dict[ItemKey, list[tuple[str, Request]]] = {}
    unadapted: dict[ItemKey, Request] = {}
    app_recording: set[ItemKey] = set()
    for key in keys:
        contract, case = state.contract_case(key)
        if contract.contract.app:  # its calls are made inside the test body
            if key.model is None and _needs_recording(state, key):
                app_recording.add(key)
        elif key.model is None and _needs_recording(state, key):
            if options.incumbent is None:
                raise RunError(f"{key.nodeid}: recording a contract with a prompt needs --incumbent-model SPEC, "
                               "the model whose answers become goldens")
            spec = options.incumbent
            requests[key] = [_request(spec, contract, case.messages, s) for s in range(options.samples)]
        elif key.model is not None:
            spec = state.candidate(key.model)
            if asked[key] is not case:  # measured rework: the incumbent's prompt too, judged beside the adapted one
                unadapted[key] = _request(spec, contract, case.messages, 0)
                case = asked[key]
            requests[key] = [_request(spec, contract, case.messages, 0)]
        if key in requests:  # each model is asked the perturbed inputs too, planned with the rest
            perturbed[key] = [(v.label, _request(spec, contract, v.messages, 0)) for v in case.variants]
    warnings = (*_structured_warnings(state, keys), *_unmatched_prompts(state))
    return Plan(requests, perturbed, frozenset(app_recording), warnings, unadapted)


def _case_on(state: RunState, key: ItemKey) -> Case:
    try:
        return state.case_on(key)
    except ContractError as exc:
        raise RunError(f"{key.model}: adapted prompt: {exc}") from None


def _unmatched_prompts(state: RunState) -> list[str]:
    """A line for each adapted prompt that names no collected contract (a typo would silently measure nothing)."""
    names = {n for c in state.contracts.values() for n in (c.key, c.nodeid)}
    return [f"{spec.name}: prompts.{name} names no collected contract (contracts: "
            f"{', '.join(sorted(c.key for c in state.contracts.values()))}); its adapted prompt is not used"
            for spec in state.options.candidates for name, _ in spec.prompts if name not in names]


def _structured_warnings(state: RunState, keys: list[ItemKey]) -> tuple[str, ...]:
    """A line for each contract judged by sentence similarity alone whose goldens are structured answers."""
    goldens: dict[str, dict[str, str]] = {}  # per contract, each case's first golden answer
    for key in keys:
        tolerance = state.contracts[key.nodeid].contract.tolerance
        if tolerance.semantic is None or tolerance.fields or key.case_id in goldens.get(key.nodeid, {}):
            continue
        golden = state.golden(key)
        if golden and golden.samples:
            goldens.setdefault(key.nodeid, {})[key.case_id] = golden.samples[0]["text"]
    lines = (semantic_on_structured(nodeid, list(texts.values())) for nodeid, texts in sorted(goldens.items()))
    return tuple(line for line in lines if line)


def semantic_required(state: RunState) -> bool:
    """Whether a collected contract sets a ``semantic`` tolerance."""
    return any(c.contract.tolerance.semantic is not None for c in state.contracts.values())


def _per_case(state: RunState, keys: list[ItemKey]) -> list[ItemKey]:
    """Every statistical item's key expanded into one key per case."""
    return [ItemKey(k.nodeid, c.id, k.model) for k in keys
            for c in (state.contracts[k.nodeid].cases if k.case_id == ALL_CASES else ())] + [
        k for k in keys if k.case_id != ALL_CASES]


def _check_sampling(state: RunState, keys: list[ItemKey]) -> None:
    """Models take only the sampling parameters their backend honours: refuse the others before any call."""
    options = state.options
    for nodeid in {k.nodeid for k in keys}:
        params = state.contracts[nodeid].contract.params
        for spec in (options.incumbent, *options.candidates):
            if spec is not None and params:
                try:
                    kind_of(spec).check_params({**spec.param_dict, **params})
                except ValueError as exc:
                    raise RunError(f"{nodeid} on model {spec.name!r}: {exc}") from None


def _needs_recording(state: RunState, key: ItemKey) -> bool:
    if state.options.record == "all":
        return True
    if state.options.record != "new":
        return False
    golden = state.golden(key)
    contract, case = state.contract_case(key)
    return golden is None or contract.stale(case, golden) or bool(
        unrecorded(((v.label, v.prompt_hash) for v in case.variants), golden.perturbed))


def _request(spec: ModelSpec, contract: ResolvedContract, messages: tuple[tuple[str, str], ...],
             sample: int) -> Request:
    return Request(model=spec, messages=messages, params=tuple(sorted(contract.contract.params.items())),
                   sample=sample, allow_empty=contract.contract.allow_empty)
