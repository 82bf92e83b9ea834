"""The drift report as one self-contained HTML file (inline CSS and SVG, no network, readable without JS).

Model outputs are untrusted: every value goes through jinja2's autoescaping, and a Content-Security-Policy
allows only the one inline sorting script (by hash), so even a missed escape could not run a script.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..files import write_text
from . import view
from ..results import CaseResult, RunResults
from .svg import PlanePoint, capability_cost_plane, histogram

#: Cases that need attention (regressions, failures, drift beyond tolerance) rendered in full per contract
#: and candidate; the rest of them are listed one line each so that no regression goes unnamed.
ATTENTION_SHOWN = 100
#: Passing cases rendered in full per contract and candidate, inside a collapsed group; the rest are counted.
PASSING_SHOWN = 10
#: Characters of a model output or prompt shown per case; longer texts are cut with a note.
TEXT_LIMIT = 4000
#: Compact one-line rows of attention cases beyond ATTENTION_SHOWN, per contract and candidate.
COMPACT_LIMIT = 2000

METRIC_ORDER = ("exact", "edit", "fields", "semantic", "style", "tokens", "kl", "top1")


def _lenient(fmt: Callable[..., str]) -> Callable[..., str]:
    # A summary field that an older or newer aggregate does not write renders as a dash, not a crash.
    return lambda value, *args: fmt(None if isinstance(value, jinja2.Undefined) else value, *args)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_llmswap.report", "templates"), autoescape=True,
                             undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_lenient(view.pct), money=_lenient(view.money), num=_lenient(view.number),
                       secs=_lenient(view.seconds), months=view.months)
    return env


def render_html(results: RunResults) -> str:
    """The full report as an HTML document."""
    env = _environment()
    script = env.get_template("sort.js.j2").render()
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    candidates = view.candidate_views(results)
    return env.get_template("report.html.j2").render(
        results=results, candidates=candidates, incumbent=results.summaries.incumbent if results.summaries else None,
        plane=_plane(results, candidates), metrics=_metric_charts(candidates),
        contract_rows=_contract_rows(results, candidates), groups=_case_groups(results),
        limits={"attention": ATTENTION_SHOWN, "passing": PASSING_SHOWN, "text": TEXT_LIMIT, "compact": COMPACT_LIMIT},
        script=Markup(script), script_hash=script_hash)


def write_html(results: RunResults, path: str | Path) -> Path:
    """Render the report and write it (UTF-8) to ``path``; returns the path."""
    path = Path(path)
    write_text(path, render_html(results))
    return path


def _plane(results: RunResults, candidates: list[view.CandidateView]) -> Markup:
    incumbent = results.summaries.incumbent if results.summaries else None
    points = []
    if results.incumbent is not None and incumbent is not None and incumbent.golden_pass_rate is not None:
        per_call = incumbent.usage.cost_per_call
        points.append(PlanePoint(f"{results.incumbent.name} (incumbent)", incumbent.golden_pass_rate,
                                 None if per_call is None else per_call * 1000, incumbent=True, css="inc"))
    for c in candidates:
        if c.summary is not None and c.summary.pass_rate is not None:
            ci = c.summary.pass_rate_ci
            points.append(PlanePoint(c.model.name, c.summary.pass_rate,
                                     c.switching.cost_per_1k_calls if c.switching else None,
                                     tuple(ci) if ci else None, css=c.css))
    return capability_cost_plane(points) if points else Markup("")


def _metric_charts(candidates: list[view.CandidateView]) -> list[dict[str, Any]]:
    names = {m for c in candidates if c.summary for m in c.summary.metrics}
    ordered = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    charts = []
    for name in ordered:
        cells = []
        for c in candidates:
            metric = c.summary.metrics.get(name) if c.summary else None
            if not metric or not metric.values:
                continue
            cells.append({"candidate": c.model.name, "mean": metric.mean, "ci": metric.ci, "n": metric.n,
                          "noise_floor": metric.noise_floor, "svg": histogram(list(metric.values), metric.noise_floor)})
        if cells:
            charts.append({"name": name, "cells": cells})
    return charts


def _contract_rows(results: RunResults, candidates: list[view.CandidateView]) -> list[dict[str, Any]]:
    rows = []
    for c in candidates:
        if c.summary is None or c.switching is None:
            continue
        for cid, s in c.summary.contracts.items():
            # Costs from the switching cost, so that the table, the cards and the plane price calls alike.
            sw = c.switching.contracts.get(cid)
            rows.append({"contract": cid, "candidate": c.model.name, **asdict(s),
                         "cost_per_call": sw.candidate_cost_per_call if sw else s.cost_per_call,
                         "incumbent_cost_per_call": sw.incumbent_cost_per_call if sw else None,
                         "needs_rework": sw.needs_rework if sw else False})

    def drift(row: dict[str, Any]) -> float:
        value = row.get("mean_semantic")
        value = row.get("mean_edit") if value is None else value
        return 1.0 if value is None else value

    # Server-side default order, so that the table reads right without JavaScript.
    rows.sort(key=lambda r: (-r["regressions"], -r["exceeded"], drift(r), r["contract"], r["candidate"]))
    return rows


def _cut(text: str) -> tuple[str, bool]:
    return (text[:TEXT_LIMIT], True) if len(text) > TEXT_LIMIT else (text, False)


def _case_view(case: CaseResult) -> dict[str, Any]:
    golden, golden_cut = _cut(view.golden_text(case))
    output, output_cut = _cut(view.output_text(case))
    prompt, prompt_cut = _cut(case.prompt)
    left, right = view.word_diff(golden, output) if case.output is not None else ([("eq", golden)], [])
    return {
        "case": case, "outcome": view.outcome(case), "left": left, "right": right, "cut": golden_cut or output_cut,
        "prompt": prompt, "prompt_cut": prompt_cut, "samples": len(case.golden),
        "variables": json.dumps(case.variables, ensure_ascii=False, indent=1, default=str),
        "metrics": [(name, case.metrics[name], name in case.exceeded_metrics) for name in
                    sorted(case.metrics, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else 99, m))],
    }


def _case_groups(results: RunResults) -> list[dict[str, Any]]:
    """Per candidate and contract: attention cases first (in full, then one line each), passing cases capped."""
    by_key: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in results.cases:
        by_key[(case.candidate or "", case.contract)].append(case)
    order = {m.name: i for i, m in enumerate(results.candidates)}
    groups = []
    for (candidate, contract), cases in by_key.items():
        attention = sorted((c for c in cases if view.needs_attention(c)), key=view.attention_key)
        passing = [c for c in cases if not view.needs_attention(c)]
        groups.append({
            "candidate": candidate or "replay", "contract": contract, "total": len(cases),
            "attention": [_case_view(c) for c in attention[:ATTENTION_SHOWN]],
            "compact": [(c, view.outcome(c)) for c in attention[ATTENTION_SHOWN:ATTENTION_SHOWN + COMPACT_LIMIT]],
            "attention_hidden": max(0, len(attention) - ATTENTION_SHOWN - COMPACT_LIMIT),
            "attention_count": len(attention),
            "passing": [_case_view(c) for c in passing[:PASSING_SHOWN]],
            "passing_count": len(passing),
        })
    groups.sort(key=lambda g: (order.get(g["candidate"], len(order)), -g["attention_count"], g["contract"]))
    return groups
