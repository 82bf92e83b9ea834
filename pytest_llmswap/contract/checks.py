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


def deepeval_checks(contract: ResolvedContract, prompt: str, output: Response, golden: Response | None,
                    scores: dict[str, float | None]) -> None:
    """Run the contract's deepeval metrics on one output; raise AssertionError naming those that fail."""
    from ..deepeval import evaluate_metrics  # the optional extra, imported only by contracts that use it

    outcome = evaluate_metrics(list(contract.contract.checks), input=prompt, actual_output=output.text,
                               expected_output=golden.text if golden else None)
    failed = []
    for name, result in outcome.items():
        scores[f"deepeval:{name}"] = result["score"]
        if not result["passed"]:
            failed.append(f"{name} scored {result['score']}" + (f" ({result['reason']})" if result["reason"] else ""))
    if failed:
        raise AssertionError("deepeval check failed: " + "; ".join(failed))


def describe(exc: BaseException) -> str:
    """An exception as one line for the report (its first line, at most 500 characters)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
