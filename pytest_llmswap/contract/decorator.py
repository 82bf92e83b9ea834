"""The contract: the ``@llm_contract`` decorator, tolerances and case expansion."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from . import conversation
from . import prompt as prompts
from ..drift.tolerance import Tolerance, ToleranceError
from .invariance import Invariance, InvarianceError
from ..settings import UNREACHABLE_PASS_RATE
from ..types import public_params

if TYPE_CHECKING:
    from ..golden import GoldenCase

CONTRACT_ATTR = "__llmswap_contract__"
ITEM_FIXTURE = "_llmswap_item"
OUTPUT_FORMATS = ("text", "json")
F = TypeVar("F", bound=Callable[..., Any])
_C = TypeVar("_C", "Case", "Variant")


class ContractError(ValueError):
    """A contract that cannot be expanded into cases: reported as one line at collection."""


@dataclass(frozen=True)
class Contract:
    """What ``@llm_contract`` records on a test function; resolved against its file at collection."""

    prompt: str | None
    cases: Any
    system: str | None = None
    output: str = "text"
    params: dict[str, Any] = field(default_factory=dict)
    tolerance: Tolerance = field(default_factory=Tolerance)
    weight: float = 1.0
    rework_hours: float = 2.0
    calls_per_month: float | None = None
    id: str | None = None
    examples: int = 20
    checks: tuple[Any, ...] = ()
    allow_empty: bool = False
    min_pass_rate: float | None = None
    max_regression_rate: float | None = None
    per_case: bool = False
    messages: tuple[dict[str, str] | str, ...] | None = None
    invariance: Invariance | None = None

    @property
    def app(self) -> bool:
        """True without a prompt or messages: the test body runs the application (docs/app-calls.md)."""
        return self.prompt is None and self.messages is None


@dataclass(frozen=True)
class Case:
    """One rendered case of a contract."""

    id: str
    variables: dict[str, Any]
    messages: tuple[tuple[str, str], ...]
    prompt_hash: str
    variants: tuple[Variant, ...] = ()  # the perturbed inputs of an invariance check (docs/metrics.md)


@dataclass(frozen=True)
class Variant:
    """One perturbed input of a case: its label (``reorder_sentences``), variables and rendered conversation."""

    label: str
    variables: dict[str, Any]
    messages: tuple[tuple[str, str], ...]
    prompt_hash: str


@dataclass(frozen=True, eq=False)
class ResolvedContract:
    """A contract bound to its test: golden key, node id and rendered cases."""

    contract: Contract
    nodeid: str
    key: str
    module_path: Path
    cases: tuple[Case, ...]

    def case(self, case_id: str) -> Case:
        return self._by_id[case_id]

    def stale(self, case: Case, golden: GoldenCase) -> bool:
        """Whether ``golden`` was recorded for another call than ``case`` makes now (messages or parameters)."""
        if golden.prompt_hash == case.prompt_hash:
            return False
        # A golden recorded before parameters counted hashes its messages alone: it is current when the
        # parameters it was recorded with agree with the contract's.
        params = json.loads(json.dumps(public_params(self.contract.params), default=str))
        return not (params and golden.prompt_hash == prompts.prompt_hash(case.messages)
                    and all(golden.params.get(k) == v for k, v in params.items()))

    @cached_property
    def _by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}


def llm_contract(
    prompt: str | None = None,
    cases: Any = None,
    *,
    system: str | None = None,
    output: str = "text",
    params: dict[str, Any] | None = None,
    tolerance: Tolerance | dict[str, Any] | None = None,
    weight: float = 1.0,
    rework_hours: float = 2.0,
    calls_per_month: float | None = None,
    id: str | None = None,
    examples: int = 20,
    checks: Sequence[Any] = (),
    allow_empty: bool = False,
    min_pass_rate: float | None = None,
    max_regression_rate: float | None = None,
    per_case: bool = False,
    messages: Sequence[dict[str, str] | str] | str | None = None,
    invariant: Sequence[str] | dict[str, Sequence[str]] | None = None,
    invariant_fields: Sequence[str] | str | None = None,
) -> Callable[[F], F]:
    """Mark a test as an LLM contract: one test item per case (and per candidate model).

    ``prompt`` is an inline jinja2 template or a template file relative to the test file; ``cases`` a list
    of dicts, a ``.jsonl``/``.json``/``.csv`` path, or a hypothesis strategy (``examples`` cases drawn the
    same way on every run). The test receives fixtures ``output``, ``case`` and ``golden``; its assertions
    (and any deepeval ``checks``) are the contract's checks. An empty answer is a failed call unless
    ``allow_empty`` says the contract legitimately expects one.

    ``min_pass_rate`` makes the contract *statistical*: one item per model row, which passes when the lower
    confidence bound of its pass rate reaches the threshold (and, with ``max_regression_rate``, when the upper
    bound of its broken-case rate against the incumbent stays under that); every case is still in the report.
    ``per_case=True`` keeps one item per case when ``[tool.llmswap] min_pass_rate`` makes the suite statistical.

    ``messages`` replaces ``prompt`` with a conversation: ``{"role", "content"}`` dicts whose content is a
    template, and names of case fields that hold a history (a list of such dicts), in order.

    ``invariant`` asks every model perturbed inputs as well: perturbation names (``reorder_sentences``,
    ``whitespace``, ``case``) applied to every string field of a case, or ``{field: [names]}``; the checked output
    (the JSON fields ``invariant_fields`` names, else the whole text) must equal the unperturbed answer's, and
    ``tolerance={"invariance": 0.9}`` requires that share per case (docs/metrics.md, "Invariance").

    Without ``prompt`` the contract tests application code: the test body calls the application, whose
    litellm and OpenAI SDK calls are recorded, replayed or routed to the candidate, and the value it returns
    is what is scored (docs/app-calls.md).
    """
    if output not in OUTPUT_FORMATS:
        raise ContractError(f"llm_contract(output={output!r}): use one of {', '.join(OUTPUT_FORMATS)}")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise ContractError("llm_contract(prompt=...) must be a non-empty template string or file name, or left "
                            "out to test application code")
    if cases is None:
        raise ContractError("llm_contract(cases=...) is required: a list of dicts, a .jsonl/.json/.csv path or a "
                            "hypothesis strategy")
    for name, value in (("min_pass_rate", min_pass_rate), ("max_regression_rate", max_regression_rate)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise ContractError(f"llm_contract({name}={value!r}): must be a number between 0 and 1")
    if min_pass_rate == 1:
        raise ContractError(UNREACHABLE_PASS_RATE.format(where="llm_contract(min_pass_rate=1)"))
    if max_regression_rate is not None and min_pass_rate is None:
        raise ContractError("llm_contract(max_regression_rate=...) needs min_pass_rate: it belongs to a statistical "
                            "contract (use min_pass_rate=0 to bound only the regression rate)")
    if per_case and min_pass_rate is not None:
        raise ContractError("llm_contract(per_case=True, min_pass_rate=...): choose one; per_case keeps one item per "
                            "case, min_pass_rate makes the contract one statistical item per model row")
    if messages is not None and (prompt is not None or system is not None):
        raise ContractError("llm_contract(messages=...) replaces prompt= and system=: put those turns in messages")
    try:
        turns = None if messages is None else conversation.check(messages)
    except prompts.PromptError as exc:
        raise ContractError(str(exc)) from None
    if prompt is None and system is not None:
        raise ContractError("llm_contract(system=...) needs a prompt; a contract without a prompt tests the "
                            "application's own calls")
    try:
        limits = Tolerance.from_value(tolerance)
        invariance = Invariance.declare(invariant, invariant_fields, json_output=output == "json")
    except (ToleranceError, InvarianceError) as exc:
        raise ContractError(str(exc)) from None
    if limits.invariance is not None and invariance is None:
        raise ContractError("tolerance 'invariance' needs llm_contract(invariant=[...]): the perturbations to ask")
    spec = Contract(
        prompt=prompt, cases=cases, system=system, output=output, params=dict(params or {}),
        tolerance=limits, weight=float(weight), rework_hours=float(rework_hours),
        calls_per_month=calls_per_month, id=id, examples=int(examples), checks=tuple(checks),
        allow_empty=bool(allow_empty), min_pass_rate=min_pass_rate, max_regression_rate=max_regression_rate,
        per_case=bool(per_case), messages=turns, invariance=invariance,
    )

    def decorate(fn: F) -> F:
        setattr(fn, CONTRACT_ATTR, spec)
        return pytest.mark.usefixtures(ITEM_FIXTURE)(pytest.mark.llm_contract(fn))

    return decorate


def resolve(contract: Contract, test_path: Path, qualname: str, nodeid: str) -> ResolvedContract:
    """Load the template and cases of ``contract`` and render every case (raises ContractError)."""
    base = test_path.parent
    if contract.app:
        raw = load_cases(contract.cases, base, contract.examples)
        # No prompt to hash: replay checks each recorded request instead, so the hash is the case's own.
        cases = tuple(Case(cid, v, (), prompts.prompt_hash([("case", json.dumps(v, sort_keys=True, default=str))]))
                      for cid, v in identify(raw))
        return ResolvedContract(contract, nodeid, contract.id or qualname, test_path, cases)
    try:
        parts = conversation.compile_parts(_turns(contract), base)
        raw = load_cases(contract.cases, base, contract.examples)
        rendered = []
        for case_id, variables in identify(raw):
            messages = conversation.render(parts, variables, case_id)
            variants = [] if contract.invariance is None else [
                Variant(label, v, tuple(m), prompts.prompt_hash(m, contract.params))
                for label, v in contract.invariance.variants(case_id, variables)
                if (m := conversation.render(parts, v, case_id)) != messages]  # unchanged prompts are no test
            rendered.append(Case(case_id, variables, tuple(messages), prompts.prompt_hash(messages, contract.params),
                                 tuple(variants)))
    except (prompts.PromptError, InvarianceError) as exc:
        raise ContractError(str(exc)) from None
    return ResolvedContract(contract, nodeid, contract.id or qualname, test_path, tuple(rendered))


def adapt(resolved: ResolvedContract, template: str) -> ResolvedContract:
    """``resolved`` with its prompt replaced by ``template`` (a file, or inline), every case and perturbed input
    rendered again: what a candidate with an adapted prompt is asked (docs/cost.md, "Measured rework")."""
    contract = resolved.contract
    if contract.prompt is None:
        kind = "application calls" if contract.app else "messages=[...]"
        raise ContractError(f"{resolved.nodeid}: an adapted prompt replaces a contract's prompt=, and this contract "
                            f"has {kind}; remove it from the model's prompts table")
    adapted = dataclasses.replace(contract, prompt=template)
    try:
        parts = conversation.compile_parts(_turns(adapted), resolved.module_path.parent)
        cases = []
        for case in resolved.cases:
            messages = conversation.render(parts, case.variables, case.id)
            variants = tuple(_rendered(v, conversation.render(parts, v.variables, case.id), contract.params)
                             for v in case.variants)
            cases.append(dataclasses.replace(_rendered(case, messages, contract.params), variants=variants))
    except prompts.PromptError as exc:
        raise ContractError(str(exc)) from None
    return dataclasses.replace(resolved, contract=adapted, cases=tuple(cases))


def _rendered(value: _C, messages: list[tuple[str, str]], params: dict[str, Any]) -> _C:
    return dataclasses.replace(value, messages=tuple(messages), prompt_hash=prompts.prompt_hash(messages, params))


def _turns(contract: Contract) -> tuple[dict[str, str] | str, ...]:
    """The contract's conversation: its ``messages``, or ``system`` and ``prompt`` as two turns."""
    if contract.messages is not None:
        return contract.messages
    system = () if contract.system is None else ({"role": "system", "content": contract.system},)
    return (*system, {"role": "user", "content": contract.prompt or ""})


def load_cases(cases: Any, base: Path, examples: int) -> list[dict[str, Any]]:
    """Cases as a list of dicts, from a list, a file path or a hypothesis strategy."""
    if isinstance(cases, (str, Path)):
        rows = _load_case_file(base / cases)
    elif isinstance(cases, Sequence):
        rows = list(cases)
    elif _is_strategy(cases):  # only now import hypothesis: most suites never pay for it
        rows = _draw(cases, examples)
    else:
        raise ContractError(f"cases must be a list of dicts, a .jsonl/.json/.csv path or a hypothesis "
                            f"strategy, not {type(cases).__name__}")
    if not rows:
        raise ContractError("the contract has no cases: give at least one")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ContractError(f"case {i} is a {type(row).__name__}, not a dict of template variables")
    return rows


def identify(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Give every case a stable id: its ``id`` key, else a short hash of its variables; ids must be unique."""
    seen: dict[str, int] = {}
    out = []
    for i, row in enumerate(rows, 1):
        case_id = str(row["id"]) if "id" in row else hashlib.sha256(
            json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:10]
        if case_id in seen:
            raise ContractError(f"duplicate case id {case_id!r} (cases {seen[case_id]} and {i}); give each "
                                "case a unique 'id' key")
        seen[case_id] = i
        out.append((case_id, row))
    return out


def _load_case_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ContractError(f"cases file not found: {path} (paths are relative to the test file)")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"cases file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                            "UTF-8") from None
    if suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ContractError(f"{path}:{lineno}: malformed JSON line ({exc.msg}, column {exc.colno})") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise ContractError(f"{path}: expected a JSON list of case objects, found {type(data).__name__}")
        return data
    if suffix == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    raise ContractError(f"cases file {path}: unsupported type {suffix!r}; use .jsonl, .json or .csv")


def _is_strategy(obj: Any) -> bool:
    try:
        from hypothesis.strategies import SearchStrategy
    except ImportError:  # pragma: no cover - hypothesis is a core dependency
        return False
    return isinstance(obj, SearchStrategy)


def _draw(strategy: Any, examples: int) -> list[dict[str, Any]]:
    """Draw ``examples`` distinct cases, identically in every process (derandomized, no database)."""
    from hypothesis import HealthCheck, Phase, given, settings

    drawn: dict[str, Any] = {}

    @settings(derandomize=True, database=None, max_examples=examples, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.setdefault(json.dumps(value, sort_keys=True, default=str), value)

    collect()
    return list(drawn.values())[:examples]
