"""Optional deepeval integration (``pip install 'pytest-llmswap[deepeval]'``); the core never imports it.

* :func:`evaluate_metrics` runs deepeval metrics as contract checks on one response.
* :class:`DriftMetric` is a deepeval metric scoring ``actual_output`` against ``expected_output`` with
  pytest-llmswap's drift metrics, for ``deepeval.assert_test`` and ``deepeval.evaluate``.

deepeval sends anonymous usage telemetry unless ``DEEPEVAL_TELEMETRY_OPT_OUT`` is set; importing this
module sets it, to the value the installed deepeval understands, unless the user already set it. That
only helps when this module imports deepeval first: deepeval's own pytest plugin imports it at pytest
start-up, so run with ``-p no:deepeval`` or export the variable yourself.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from packaging.version import InvalidVersion, Version


def _telemetry_opt_out_value() -> str:
    """The opt-out value the installed deepeval understands, read without importing it."""
    try:
        installed = Version(importlib.metadata.version("deepeval"))
    except (importlib.metadata.PackageNotFoundError, InvalidVersion):
        return "1"
    # deepeval <= 3.4.6 opts out only on the exact string "YES" (and phones home at import otherwise),
    # 3.4.7-3.6.x only on "1", 3.7 and later on any truthy word.
    return "YES" if installed < Version("3.4.7") else "1"


os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", _telemetry_opt_out_value())

try:
    from deepeval.errors import MissingTestCaseParamsError
    from deepeval.metrics import BaseMetric
    from deepeval.test_case import LLMTestCase
except ImportError as exc:
    raise ImportError(f"the deepeval integration needs the 'deepeval' extra ({exc.name or exc} is missing): "
                      "pip install 'pytest-llmswap[deepeval]'") from None

from .drift.style import style_distance
from .drift.text import edit_similarity

if TYPE_CHECKING:
    from .drift.semantic import SemanticScorer


def _measure(metric: BaseMetric, test_case: LLMTestCase) -> None:
    __tracebackhide__ = True  # a metric that raises shows its own frames, not ours
    # deepeval's own metrics draw a progress spinner unless told not to; custom metrics may not take the flag.
    params = inspect.signature(metric.measure).parameters
    if "_show_indicator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        metric.measure(test_case, _show_indicator=False)
    else:
        metric.measure(test_case)


def _metric_name(metric: BaseMetric) -> str:
    name = getattr(metric, "__name__", None)
    return name if isinstance(name, str) else type(metric).__name__


def evaluate_metrics(metrics: Sequence[BaseMetric], *, input: str, actual_output: str,
                     expected_output: str | None = None) -> dict[str, dict[str, Any]]:
    """Measure each deepeval metric on one test case: ``{name: {"score", "passed", "reason"}}``.

    ``passed`` follows the metric's own ``is_successful()`` (``score >= threshold`` for deepeval's metrics).
    A metric that raises (a missing parameter, an LLM judge without an API key) propagates its error.
    Two metrics with one name are told apart as ``name``, ``name #2``, ...
    """
    __tracebackhide__ = True
    test_case = LLMTestCase(input=input, actual_output=actual_output, expected_output=expected_output)
    results: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        _measure(metric, test_case)
        name = base = _metric_name(metric)
        count = 1
        while name in results:
            count += 1
            name = f"{base} #{count}"
        score = metric.score
        results[name] = {"score": None if score is None else float(score), "passed": metric.is_successful(),
                         "reason": metric.reason}
    return results


class DriftMetric(BaseMetric):
    """How close ``actual_output`` stays to ``expected_output`` (the golden), as a deepeval metric.

    ``kind="edit"`` scores normalised Levenshtein similarity; ``kind="semantic"`` scores the cosine of
    the local sentence encoder (the ``semantic`` extra; pass a shared ``scorer`` to reuse its cache).
    Like deepeval's metrics, the score lies in [0, 1], the metric succeeds when ``score >= threshold``
    and ``strict_mode`` demands a perfect score. ``score_breakdown`` also reports the style distance.
    No LLM judge and no network are involved.
    """

    def __init__(self, threshold: float = 0.8, *, kind: Literal["edit", "semantic"] = "edit",
                 scorer: SemanticScorer | None = None, strict_mode: bool = False, include_reason: bool = True,
                 async_mode: bool = True, verbose_mode: bool = False) -> None:
        if kind not in ("edit", "semantic"):
            raise ValueError(f"kind must be 'edit' or 'semantic', got {kind!r}")
        self.threshold = 1.0 if strict_mode else threshold
        self.kind = kind
        self.scorer = scorer
        self.strict_mode = strict_mode
        self.include_reason = include_reason
        self.async_mode = async_mode
        self.verbose_mode = verbose_mode
        self.evaluation_model = None
        self.evaluation_cost = 0.0

    def _similarity(self, expected: str, actual: str) -> float:
        if self.kind == "edit":
            return edit_similarity(expected, actual)
        if self.scorer is None:
            from .drift.semantic import SemanticScorer

            self.scorer = SemanticScorer()
        # A cosine can be negative; clamp so the score keeps deepeval's [0, 1] range.
        return max(0.0, self.scorer.similarity(expected, actual))

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        """Score the test case, set ``score``, ``success``, ``reason`` and ``score_breakdown``; return the score."""
        if test_case.actual_output is None or test_case.expected_output is None:
            raise MissingTestCaseParamsError(f"{self.__name__} needs 'actual_output' and 'expected_output'")
        self.error = None
        self.score = self._similarity(test_case.expected_output, test_case.actual_output)
        self.score_breakdown = {self.kind: self.score,
                                "style_distance": style_distance(test_case.expected_output, test_case.actual_output)}
        self.success = self.score >= self.threshold
        if self.include_reason:
            verdict = "within" if self.success else "beyond"
            self.reason = (f"{self.kind} similarity {self.score:.3f} to the expected output is {verdict} the "
                           f"threshold {self.threshold:g}; style distance "
                           f"{self.score_breakdown['style_distance']:.3f}")
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        """Same as :meth:`measure`: the scoring is local and quick, nothing to await."""
        return self.measure(test_case)

    def is_successful(self) -> bool:
        """True when the last measured score reached the threshold (False before any measure or on error)."""
        if self.error is not None or self.score is None:
            self.success = False
        else:
            self.success = self.score >= self.threshold
        return self.success

    @property
    def __name__(self) -> str:  # deepeval names metrics by this property
        return f"LLMSwap Drift ({self.kind})"
