"""What the HTML and Markdown reports share: number formats, the word diff, per-candidate views, case order."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from ..drift.metrics import similarity
from ..verdict.figures import pct
from ..results import CaseResult, ModelInfo, RunResults
from ..verdict.summaries import (DROP_IN, INCONCLUSIVE, NOT_RECOMMENDED, REWORK, CandidateSummary, IncumbentSummary, Switching,
                         Verdict)

# A word with the whitespace after it: changed words group into one <ins>/<del> instead of one per word.
_TOKEN = re.compile(r"\S+\s*|\s+")


def money(value: float | None) -> str:
    """USD with cents; sub-cent amounts keep three significant digits in plain decimals (never ``1.56e-05``)."""
    if value is None:
        return "—"
    size = abs(value)
    decimals = 2 if size == 0 or size >= 0.01 else 2 - math.floor(math.log10(size))
    return f"{'-' if value < 0 else ''}${size:,.{decimals}f}"


# An absolute path of three or more parts (POSIX or Windows), not the path part of a URL.
_ABS_PATH = re.compile(r"(?<![\w.~/\\-])(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){3,}")


def strip_paths(text: str | None) -> str:
    """``text`` with each absolute local path cut to its last two parts: a report shared as an artifact
    must not show where the run's checkout or models lived."""
    if not text or ("/" not in text and "\\" not in text):
        return text or ""
    return _ABS_PATH.sub(lambda m: "…/" + "/".join(re.split(r"[/\\]", m.group(0))[-2:]), text)


def number(value: float | None, digits: int = 3) -> str:
    """A float with ``digits`` significant digits; None -> an em dash."""
    return "—" if value is None else f"{value:.{digits}g}"


def seconds(value: float | None) -> str:
    """Seconds with two decimals; under 0.1 s in milliseconds, so a fast local model does not read "0.00 s"."""
    if value is None:
        return "—"
    return f"{value * 1000:.2g} ms" if value < 0.1 else f"{value:.2f} s"


#: A break-even further away than this is no plan a team can budget on (issue 19.4).
BREAK_EVEN_HORIZON_MONTHS = 120


def months(switching: Switching | None) -> str:
    """Break-even in words: ``4.2 months``, ``now`` (nothing to pay back), ``never``, ``never (over 10 years)``
    or ``unknown``."""
    if switching is None:
        return "unknown"
    value = switching.break_even_months
    if value is not None:
        if value > BREAK_EVEN_HORIZON_MONTHS:
            return f"never (over {BREAK_EVEN_HORIZON_MONTHS // 12} years)"
        return "now" if value == 0 else f"{value:.1f} months"
    return "never" if switching.never_breaks_even else "unknown"


#: Why the incumbent's latency stands apart: it was timed when its goldens were recorded, under other load.
INCUMBENT_LATENCY = "timed when its goldens were recorded, not beside the candidates in this run, so not compared"


def incumbent_latency(incumbent: IncumbentSummary | None) -> str:
    """The incumbent's latency as a labelled sentence of its own ("" when unknown)."""
    if incumbent is None or incumbent.usage.latency_p50 is None:
        return ""
    usage = incumbent.usage
    return f"Incumbent latency p50 {seconds(usage.latency_p50)} · p95 {seconds(usage.latency_p95)}: {INCUMBENT_LATENCY}."


Segments = list[tuple[str, str]]


def word_diff(golden: str, candidate: str, max_tokens: int = 1500) -> tuple[Segments, Segments]:
    """Word-level diff as two segment lists ``[(kind, text)]``; kind is ``eq``, ``del`` (golden) or ``ins``.

    Inputs longer than ``max_tokens`` words-and-spaces are cut (the caller says so), because difflib is
    quadratic in the worst case and one pathological output must not stall the report.
    """
    a, b = _TOKEN.findall(golden)[:max_tokens], _TOKEN.findall(candidate)[:max_tokens]
    left: Segments = []
    right: Segments = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            left.append(("eq", "".join(a[i1:i2])))
            right.append(("eq", "".join(b[j1:j2])))
        else:
            if i2 > i1:
                left.append(("del", "".join(a[i1:i2])))
            if j2 > j1:
                right.append(("ins", "".join(b[j1:j2])))
    return left, right


def outcome(case: CaseResult) -> str:
    """One word for a case row: failed call, error, regression, failed, exceeded, improvement or passed."""
    if case.call_error:
        return "failed call"
    if case.failure:
        return "error"
    if case.flip == "regression":
        return "regression"
    if case.candidate_passed is False:
        return "failed"
    if case.exceeded:
        return "exceeded"
    if case.flip == "improvement":
        return "improvement"
    return "passed"


_ATTENTION_RANK = {"failed call": 0, "regression": 1, "error": 2, "failed": 3, "exceeded": 4}


def needs_attention(case: CaseResult) -> bool:
    return outcome(case) in _ATTENTION_RANK


def attention_key(case: CaseResult) -> tuple[int, float, str]:
    """Regressions first, then errors, failures and drift beyond tolerance; the furthest drift first within each."""
    close = similarity(case.metrics)
    return (_ATTENTION_RANK.get(outcome(case), 9), 1.0 if close is None else close, case.case_id)


_ORDER = (DROP_IN, REWORK, NOT_RECOMMENDED, INCONCLUSIVE)


def overall_line(results: RunResults, candidates: list[CandidateView]) -> str:
    """The decision in one sentence: which candidate can replace the incumbent, and on what terms."""
    incumbent = results.incumbent.name if results.incumbent else "the incumbent"
    if not candidates:
        return f"Replay only: no candidate ran against {incumbent}."
    by_label: dict[str, list[str]] = {}
    for c in candidates:
        by_label.setdefault(c.label, []).append(c.model.name)
    if DROP_IN in by_label:
        lead = f"{_names(by_label[DROP_IN])} can replace {incumbent} as is"
    elif REWORK in by_label:
        lead = f"No drop-in for {incumbent}; {_names(by_label[REWORK])} can replace it after rework"
    else:
        lead = f"No candidate can replace {incumbent} yet"
    rest = [f"{label}: {_names(by_label[label])}" for label in (*_ORDER, "no verdict") if label in by_label]
    return f"{_saving(candidates)} {lead} ({'; '.join(rest)})."


def _saving(candidates: list[CandidateView]) -> str:
    """What the switch saves or costs a month: the cheapest drop-in's saving, else the cheapest candidate's
    saving or extra cost with its rework and break-even (rework candidates first: they can replace it)."""
    priced = sorted((c for c in candidates if c.switching and c.switching.monthly_saving_usd is not None),
                    key=lambda c: -(c.switching.monthly_saving_usd or 0.0))  # type: ignore[union-attr]
    drop_in = next((c for c in priced if c.label == DROP_IN and (c.switching.monthly_saving_usd or 0) > 0), None)
    if drop_in is not None:
        sw = drop_in.switching
        assert sw is not None
        return (f"Switching to {drop_in.model.name} saves {money(sw.monthly_saving_usd)} a month "
                f"({money(sw.candidate_monthly_usd)} instead of {money(sw.incumbent_monthly_usd)}).")
    if not priced:
        reason = next((c.switching.unpriced_reason for c in candidates if c.switching and c.switching.unpriced_reason),
                      None)
        return f"No candidate's monthly cost is known{f' ({reason})' if reason else ''}."
    cheapest = next((c for c in priced if c.label == REWORK), priced[0])
    sw = cheapest.switching
    assert sw is not None and sw.monthly_saving_usd is not None
    saving = sw.monthly_saving_usd
    change = (f"saves {money(saving)} a month" if saving > 0 else
              f"costs {money(-saving)} more a month" if saving < 0 else "costs the same a month")
    rework = f"after {money(sw.rework_usd)} of rework" if sw.rework_usd else "with no rework"
    return f"No cheaper drop-in: {cheapest.model.name} ({cheapest.label}) {change}, {rework} (break-even {months(sw)})."


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Problems:
    """What needs attention on one candidate, in the order a reviewer should read it."""

    failed_calls: int
    first_error: str | None
    regressions: float
    exceeded: int
    exceeded_metrics: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.failed_calls or self.regressions or self.exceeded)


def problems(results: RunResults, candidate: CandidateView) -> Problems:
    """The summary's counts of failed calls, regressions and cases beyond tolerance, with the metrics broken."""
    s = candidate.summary
    names = sorted({m for c in results.cases if c.candidate == candidate.model.name for m in c.exceeded_metrics})
    if s is None:
        return Problems(0, None, 0.0, 0, tuple(names))
    return Problems(s.failed_calls, s.first_error, s.regressions, s.exceeded, tuple(names))


@dataclass
class CandidateView:
    """One candidate with its summary, switching cost and verdict (None for a results file without summaries)."""

    model: ModelInfo
    summary: CandidateSummary | None
    switching: Switching | None
    verdict: Verdict | None

    @property
    def label(self) -> str:
        return self.verdict.verdict if self.verdict else "no verdict"

    @property
    def css(self) -> str:
        return {DROP_IN: "ok", REWORK: "warn", NOT_RECOMMENDED: "bad"}.get(self.label, "none")


def candidate_views(results: RunResults) -> list[CandidateView]:
    """A view per candidate, from the summaries :func:`...aggregate.summarize` made."""
    s = results.summaries
    if s is None:
        return [CandidateView(m, None, None, None) for m in results.candidates]
    return [CandidateView(m, s.candidates.get(m.name), s.switching.get(m.name), s.verdicts.get(m.name))
            for m in results.candidates]


def golden_text(case: CaseResult) -> str:
    return case.golden[0].text if case.golden else ""


def output_text(case: CaseResult) -> str:
    return case.output.text if case.output is not None else ""


def checkpoint(model: ModelInfo) -> str:
    """The checkpoint id a model's answers carried (``resolved_id``), or "" when they carried none or only the
    model's own name (a served model answering as ``--served-model-name NAME``): that names no checkpoint, and
    the report then shows the spec that was called instead."""
    return model.resolved_id if model.resolved_id and model.resolved_id != model.name else ""
