"""The drift report as one self-contained HTML file (inline CSS and SVG, no network, readable without JS).

Model outputs are untrusted: every value goes through jinja2's autoescaping, and a Content-Security-Policy
allows only the one inline script (by hash: sorting, the matrix's filter, search and pages), so even a missed
escape could not run a script.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..drift.metrics import report_order, similarity
from ..verdict.figures import plural
from ..files import write_text
from . import view
from ..results import CaseResult, RunResults
from ..types import Prices
from .matrix import PAGE_ROWS, columns, matrix_rows
from .svg import PlanePoint, capability_cost_plane, histogram

#: Cases that need attention (regressions, failures, drift beyond tolerance) rendered in full per contract
#: and candidate; the matrix names every other case in one row.
ATTENTION_SHOWN = 25
#: Of those, the ones shown expanded (the rest are one click away), so the page stays short.
ATTENTION_OPEN = 2
#: Groups (candidate and contract) shown expanded, the ones with the most cases that need attention.
GROUPS_OPEN = 3
#: Passing cases rendered in full per contract and candidate, inside a collapsed group; the rest are counted.
PASSING_SHOWN = 5
#: Characters of a model output or prompt shown per case; longer texts are cut with a note.
TEXT_LIMIT = 4000
#: The contracts table's columns; each drift metric's mean goes in after the first eight.
CONTRACT_COLUMNS = ("contract", "candidate", "cases", "passed", "checks passed", "regressions", "improvements",
                    "beyond tolerance", "cost / call", "incumbent cost / call", "rework")
#: Stale or unused goldens listed by name; the rest are counted.
GOLDENS_LISTED = 200


def _lenient(fmt: Callable[..., str]) -> Callable[..., str]:
    # A summary field that an older or newer aggregate does not write renders as a dash, not a crash.
    return lambda value, *args: fmt(None if isinstance(value, jinja2.Undefined) else value, *args)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_llmswap.report", "templates"), autoescape=True,
                             undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_lenient(view.pct), money=_lenient(view.money), num=_lenient(view.number),
                       secs=_lenient(view.seconds), months=view.months, local=_lenient(view.strip_paths),
                       plural=lambda count, word: plural(count, word))
    env.globals["checkpoint"] = view.checkpoint
    env.globals["price_keys"] = [f.name for f in fields(Prices)]
    return env


def render_html(results: RunResults) -> str:
    """The full report as an HTML document."""
    env = _environment()
    script = env.get_template("report.js.j2").render(page_rows=PAGE_ROWS)
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    candidates = view.candidate_views(results)
    contract_rows = _contract_rows(results, candidates)
    contract_metrics = report_order({name for row in contract_rows for name in row["means"]})
    groups, anchors = _case_groups(results)
    return env.get_template("report.html.j2").render(
        results=results, settings=results.run_settings, candidates=candidates, incumbent=results.summaries.incumbent if results.summaries else None,
        overall=view.overall_line(results, candidates),
        incumbent_latency=view.incumbent_latency(results.summaries.incumbent if results.summaries else None),
        attention=_attention(results, candidates),
        plane=_plane(results, candidates), unpriced=[c.model.name for c in candidates if c.switching is None
                                                     or c.switching.cost_per_1k_calls is None],
        metrics=_metric_charts(candidates), contract_rows=contract_rows,
        contract_metrics=contract_metrics, contract_headers=[*CONTRACT_COLUMNS[:8], *(f"mean {m}" for m in contract_metrics),
                                                             *CONTRACT_COLUMNS[8:]], groups=groups,
        columns=columns(results), rows=matrix_rows(results, anchors),
        limits={"attention": ATTENTION_SHOWN, "passing": PASSING_SHOWN, "text": TEXT_LIMIT, "page": PAGE_ROWS,
                "goldens": GOLDENS_LISTED, "groups_open": GROUPS_OPEN, "open": ATTENTION_OPEN},
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
                                 None if per_call is None else per_call * 1000, incumbent.golden_pass_rate_ci,
                                 incumbent=True, css="inc"))
    for c in candidates:
        if c.summary is not None and c.summary.pass_rate is not None:
            ci = c.summary.pass_rate_ci
            points.append(PlanePoint(c.model.name, c.summary.pass_rate,
                                     c.switching.cost_per_1k_calls if c.switching else None,
                                     tuple(ci) if ci else None, css=c.css))
    return capability_cost_plane(points) if points else Markup("")


def _attention(results: RunResults, candidates: list[view.CandidateView]) -> list[dict[str, Any]]:
    """What needs attention across candidates: failed calls, then regressions, then drift beyond tolerance
    (the most affected candidate first within each), each linked to its cases in the matrix."""
    items = []
    for column, c in enumerate(candidates):
        p = view.problems(results, c)
        if p.failed_calls:
            items.append({"rank": 0, "size": p.failed_calls, "candidate": c.model.name, "column": column,
                          "what": plural(p.failed_calls, "failed call"),
                          "detail": view.strip_paths(p.first_error) if p.first_error else ""})
        if p.regressions:
            items.append({"rank": 1, "size": p.regressions, "candidate": c.model.name, "column": column,
                          "what": plural(p.regressions, "regression"),
                          "detail": view.strip_paths(c.verdict.headline) if c.verdict else ""})
        if p.exceeded:
            items.append({"rank": 2, "size": p.exceeded, "candidate": c.model.name, "column": column,
                          "what": f"{plural(p.exceeded, 'case')} beyond tolerance",
                          "detail": ("metrics: " + ", ".join(p.exceeded_metrics)) if p.exceeded_metrics else ""})
    return sorted(items, key=lambda i: (i["rank"], -i["size"], i["column"]))


def _metric_charts(candidates: list[view.CandidateView]) -> list[dict[str, Any]]:
    names = {m for c in candidates if c.summary for m in c.summary.metrics}
    charts = []
    for name in report_order(names):
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
        value = similarity(row["means"])
        return 1.0 if value is None else value

    # Server-side default order, so that the table reads right without JavaScript.
    rows.sort(key=lambda r: (-r["regressions"], -r["exceeded"], drift(r), r["contract"], r["candidate"]))
    return rows


def _cut(text: str) -> tuple[str, bool]:
    return (text[:TEXT_LIMIT], True) if len(text) > TEXT_LIMIT else (text, False)


def _case_view(case: CaseResult, anchor: str) -> dict[str, Any]:
    golden, golden_cut = _cut(view.golden_text(case))
    output, output_cut = _cut(view.output_text(case))
    prompt, prompt_cut = _cut(case.prompt)
    left, right = view.word_diff(golden, output) if case.output is not None else ([("eq", golden)], [])
    return {
        "case": case, "anchor": anchor, "outcome": view.outcome(case), "left": left, "right": right, "cut": golden_cut or output_cut,
        "prompt": prompt, "prompt_cut": prompt_cut, "samples": len(case.golden),
        "variables": json.dumps(case.variables, ensure_ascii=False, indent=1, default=str),
        "metrics": [(name, case.metrics[name], name in case.exceeded_metrics) for name in report_order(case.metrics)],
    }


def _case_groups(results: RunResults) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], str]]:
    """Per candidate and contract, the groups with the most cases that need attention first, whichever the
    candidate; in each, those cases in full (capped), passing ones capped in a collapsed part. Also returns
    the anchor of every case rendered, by (candidate, contract, case id), for the matrix's links."""
    by_key: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in results.cases:
        by_key[(case.candidate or "replay", case.contract)].append(case)
    order = {name: i for i, name in enumerate(columns(results))}
    keyed = []
    for (candidate, contract), cases in by_key.items():
        attention = sorted((c for c in cases if view.needs_attention(c)), key=view.attention_key)
        keyed.append((candidate, contract, cases, attention))
    keyed.sort(key=lambda g: (-len(g[3]), order.get(g[0], len(order)), g[1]))
    groups, anchors = [], {}

    def shown(case: CaseResult) -> dict[str, Any]:
        anchor = f"d{len(anchors)}"
        anchors[(case.candidate or "replay", case.contract, case.case_id)] = anchor
        return _case_view(case, anchor)

    for candidate, contract, cases, attention in keyed:
        passing = [c for c in cases if not view.needs_attention(c)]
        groups.append({
            "candidate": candidate, "contract": contract, "total": len(cases),
            "attention": [shown(c) for c in attention[:ATTENTION_SHOWN]], "attention_count": len(attention),
            "passing": [shown(c) for c in passing[:PASSING_SHOWN]], "passing_count": len(passing),
        })
    return groups, anchors
