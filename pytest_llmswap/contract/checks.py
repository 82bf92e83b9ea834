"""The contract's checks on one answer, as the callable ``drift.judge`` takes: format, assertions, deepeval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .decorator import ResolvedContract
from ..drift.judge import Check, CheckOutcome
from ..types import Response


def make_check(contract: ResolvedContract, prompt: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Check:
    """The checks of ``contract`` for one case: the output format, the test's assertions, then deepeval metrics.

    The test function runs with ``output`` (and ``golden``) bound to the answer under check; a failure of any
    kind is returned, not raised, so the caller decides what fails the item.
    """

    def check(output: Response, golden: Response) -> CheckOutcome:
        __tracebackhide__ = True  # a failure shows the user's frame (or a metric's), not this one
        call = dict(kwargs)
        if "output" in call:
            call["output"] = output
        if "golden" in call:
            call["golden"] = golden
        scores: dict[str, float | None] = {}
        try:
            if contract.contract.output == "json":
                output.json  # noqa: B018 - parsing is the format check
            fn(**call)
            if contract.contract.checks:
                deepeval_checks(contract, prompt, output, golden, scores)
        except (Exception, pytest.fail.Exception) as exc:
            return CheckOutcome(exc, scores)
        return CheckOutcome(None, scores)

    return check


class DeepevalCheckFailed(pytest.fail.Exception):
    """deepeval metrics that did not pass, in one line: pytest shows the line alone (``pytest.fail(...,
    pytrace=False)``), not the plugin's frames. The line is ``args[0]``, so a caller may reword it (judging K
    samples prefixes ``sample 2 of 3: ``). It prints as pytest's own ``Failed`` does (pytest's trick: a class
    that says it lives in ``builtins`` prints without its module), so the short test summary reads
    ``FAILED ...::test_x[case-model] - Failed: deepeval check failed: ...``."""

    __module__ = "builtins"
    __qualname__ = "Failed"

    def __init__(self, msg: str) -> None:
        super().__init__(msg, pytrace=False)

    @property  # type: ignore[override]
    def msg(self) -> str:
        return str(self.args[0]) if self.args else ""

    @msg.setter
    def msg(self, value: str | None) -> None:
        self.args = (value,)


def deepeval_checks(contract: ResolvedContract, prompt: str, output: Response, golden: Response | None,
                    scores: dict[str, float | None]) -> None:
    """Run the contract's deepeval metrics on one output; raise :class:`DeepevalCheckFailed` naming those that
    fail (a metric that raises, such as an LLM judge without its key, propagates its own error)."""
    __tracebackhide__ = True
    from ..deepeval import evaluate_metrics  # the optional extra, imported only by contracts that use it

    outcome = evaluate_metrics(list(contract.contract.checks), input=prompt, actual_output=output.text,
                               expected_output=golden.text if golden else None)
    failed = []
    for name, result in outcome.items():
        scores[f"deepeval:{name}"] = result["score"]
        if not result["passed"]:
            failed.append(f"{name} scored {result['score']}" + (f" ({result['reason']})" if result["reason"] else ""))
    if failed:
        raise DeepevalCheckFailed("deepeval check failed: " + "; ".join(failed))


def describe(exc: BaseException) -> str:
    """An exception as one line for the report (its first line, at most 500 characters)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
