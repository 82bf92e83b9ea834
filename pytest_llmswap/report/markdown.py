"""The pull-request summary in GitHub-flavoured Markdown: the overall verdict in one line, a narrow table,
each candidate's problems with the verdict's reasons, goldens to re-record, then switching cost and cases.

Always under a size limit (a PR comment holds 65,536 characters): the regression list is cut with a note.
Model output is untrusted here too: it only appears inside code fences longer than any backtick run it
contains, so it cannot close the fence, render HTML, embed images or mention people.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from ..verdict.figures import plural
from ..files import append_text, encode, write_text
from . import view
from ..results import CaseResult, ModelInfo, RunResults
from ..verdict.summaries import IncumbentSummary

DEFAULT_LIMIT = 60_000
#: Most cases listed per candidate, before the size limit even applies: a PR comment is a summary.
CASES_PER_CANDIDATE = 25
SNIPPET_CHARS = 240

_PUNCT = re.compile(r"([\\`*_\[\]<>|#@!~])")
_ICON = {"drop-in": "✅", "migrate with rework": "⚠️", "not recommended": "❌", "inconclusive": "❔"}
#: An invisible line that a CI step can search for to find and update its own comment.
MARKER = "<!-- pytest-llmswap summary -->"
#: Stale or unused goldens named in the summary; the rest are counted.
GOLDENS_LISTED = 10


def _text(value: object) -> str:
    """Free text in Markdown: punctuation escaped, one line (safe inside a table cell)."""
    return _PUNCT.sub(r"\\\1", " ".join(str(value).split()))


def _code(value: object) -> str:
    """An inline code span that no backtick or pipe in ``value`` can break."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fence(body: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", body)), default=0) + 1)
    return f"{ticks}{lang}\n{body}\n{ticks}"


def _snippet(text: str, start: int) -> str:
    """One line of ``text`` from about ``start`` (a character offset), at most SNIPPET_CHARS long."""
    begin = max(0, start - 40)
    space = text.find(" ", begin, start)
    if begin and space >= 0:
        begin = space + 1  # start at a word, not inside one
    cut = text[begin:begin + SNIPPET_CHARS]
    line = ("…" if begin else "") + cut + ("…" if begin + SNIPPET_CHARS < len(text) else "")
    return line.replace("\r", "").replace("\n", "⏎ ")


def short_diff(golden: str, candidate: str) -> str:
    """A two-line ``diff`` block (golden, candidate), both cut around the first character where they differ."""
    offset = len(os.path.commonprefix([golden, candidate]))
    if offset == len(golden) == len(candidate):
        offset = 0
    return _fence(f"- {_snippet(golden, offset)}\n+ {_snippet(candidate, offset)}", "diff")


def _size(text: str) -> int:
    # UTF-8 bytes: at least the character count, so the limit holds whichever way the consumer counts.
    return len(encode(text))


def run_link() -> str | None:
    """The GitHub Actions run page's artifacts, when this runs inside a workflow (None elsewhere)."""
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if not (server and repo and run):
        return None
    return f"{server.rstrip('/')}/{repo}/actions/runs/{run}#artifacts"


def _header(results: RunResults, candidates: list[view.CandidateView]) -> list[str]:
    icon = _ICON.get(candidates[0].label, "") if len(candidates) == 1 else ""
    lines = [f"**pytest-llmswap:** {icon + ' ' if icon else ''}{_text(view.overall_line(results, candidates))}", ""]
    inc = results.incumbent
    who = f"Incumbent **{_text(inc.name)}** ({_code(view.strip_paths(view.checkpoint(inc) or inc.spec))})" if inc else \
        "No incumbent"
    link = run_link()
    lines += [f"{who} · {plural(len(results.cases), 'case row')} in {plural(len(results.contracts), 'contract')}"
              + (f" · [full report and results (artifacts of this run)]({link})" if link else ""), ""]
    if not candidates:
        return lines
    lines += ["| candidate | verdict | pass rate | regressions | failed calls | monthly Δ | break-even |",
              "|---|---|---|---|---|---|---|"]
    for c in candidates:
        s, sw = c.summary, c.switching
        if s is None or sw is None:
            lines.append(f"| **{_text(c.model.name)}** | no summary |" + " — |" * 5)
            continue
        delta = sw.monthly_delta_usd
        monthly = "unknown" if delta is None else f"{'+' if delta > 0 else ''}{view.money(delta)}"
        lines.append(" | ".join([
            f"| **{_text(c.model.name)}**", f"{_ICON.get(c.label, '')} {c.label}", view.pct(s.pass_rate),
            f"{s.regressions:g}", str(s.failed_calls), monthly, view.months(sw)]) + " |")
    incumbent = results.summaries.incumbent if results.summaries else None
    if incumbent:
        lines += ["", f"Incumbent pass rate on its goldens: {view.pct(incumbent.golden_pass_rate)}."]
    lines += _invariance(incumbent, candidates)
    return lines + [""] + _problems(results, candidates) + _goldens(results)


def _invariance(incumbent: IncumbentSummary | None, candidates: list[view.CandidateView]) -> list[str]:
    """One line: each model's share of perturbed inputs whose checked output held (contracts with ``invariant``)."""
    rows = [(incumbent.name, incumbent.invariance)] if incumbent else []
    rows += [(c.model.name, c.summary.invariance) for c in candidates if c.summary]
    shown = [f"**{_text(name)}** {view.pct(inv.rate)} [{view.pct(inv.ci[0])}, {view.pct(inv.ci[1])}] "
             f"({inv.held} of {inv.perturbed} held)" for name, inv in rows if inv]
    return ["", "Invariance (per case, the share of perturbed inputs whose checked output held; 95% interval over "
                "the cases): " + " · ".join(shown) + "."] if shown else []


def _problems(results: RunResults, candidates: list[view.CandidateView]) -> list[str]:
    """Per candidate that is not a clean drop-in: its verdict's reasons, failed calls, drift beyond tolerance."""
    lines: list[str] = []
    for c in candidates:
        p = view.problems(results, c)
        if c.label == "drop-in" and not p:
            continue
        lines += [f"**{_text(c.model.name)}**: {_ICON.get(c.label, '')} {c.label}", ""]
        lines += [f"- {_text(view.strip_paths(r))}" for r in (c.verdict.reasons if c.verdict else ())]
        if p.failed_calls and c.summary:
            first = f", first: {_code(view.strip_paths(p.first_error)[:200])}" if p.first_error else ""
            lines.append(f"- {p.failed_calls} of {plural(c.summary.cases, 'call')} failed{first}")
        if p.exceeded:
            metrics = f" ({', '.join(_code(m) for m in p.exceeded_metrics)})" if p.exceeded_metrics else ""
            lines.append(f"- {plural(p.exceeded, 'case')} beyond tolerance{metrics}")
        lines.append("")
    return (["### Needs attention", ""] + lines) if lines else []


def _goldens(results: RunResults) -> list[str]:
    lines: list[str] = []
    for kind, names, why in (("stale", results.stale_goldens, "the prompt changed since they were recorded; "
                              "re-record with `--llmswap-record new`"),
                             ("unused", results.unused_goldens, "no collected case uses them")):
        if not names:
            continue
        shown = ", ".join(_code(view.strip_paths(g)) for g in names[:GOLDENS_LISTED])
        more = f" and {len(names) - GOLDENS_LISTED} more" if len(names) > GOLDENS_LISTED else ""
        lines += [f"- **{plural(len(names), kind + ' golden')}** ({why}): {shown}{more}"]
    return (["### Goldens", ""] + lines + [""]) if lines else []


def _details(results: RunResults, candidates: list[view.CandidateView]) -> list[str]:
    """The incumbent's figures and the switching cost, collapsed: the reviewer's second look."""
    incumbent = results.summaries.incumbent if results.summaries else None
    if not candidates:
        return []
    lines = ["<details><summary>Switching cost, latency and tokens</summary>", ""]
    rate = view.money(results.run_settings.hourly_rate)
    lines += [f"Rework at {rate} per hour for every contract with a regression, drift beyond tolerance or an adapted "
              "prompt (`rework_hours` is then your estimate of the adaptation); break-even = rework / monthly saving.",
              "",
              "| candidate | rework | monthly cost | latency p50 / p95 (this run) | tokens / task |", "|---|---|---|---|---|"]
    for c in candidates:
        s, sw = c.summary, c.switching
        if s is None or sw is None:
            continue
        names = sw.rework_contracts
        lines.append(f"| **{_text(c.model.name)}** | {view.number(sw.rework_hours)} h = {view.money(sw.rework_usd)} "
                     f"({plural(len(names), 'contract')}) | {_monthly(c.model, sw.candidate_monthly_usd)} | "
                     f"{view.seconds(s.usage.latency_p50)} / {view.seconds(s.usage.latency_p95)} | "
                     f"{view.number(s.usage.tokens_per_task, 4)} |")
    if incumbent:
        monthly = next((c.switching.incumbent_monthly_usd for c in candidates if c.switching), None)
        lines.append(f"| incumbent | — | {_monthly(results.incumbent, monthly)} | "
                     f"not compared (below) | {view.number(incumbent.usage.tokens_per_task, 4)} |")
        latency = view.incumbent_latency(incumbent)
        lines += ["", _text(latency)] if latency else []
    calibrated = [m for m in (results.incumbent, *(c.model for c in candidates)) if m and m.calibrated_on]
    lines += ["", *(f"- {_text(m.name)}: GPU-hour throughput calibrated {m.calibrated_at[:10]} on "
                    f"{_text(m.calibrated_on)}" for m in calibrated)] if calibrated else []
    return lines + ["", "</details>", ""]


def _monthly(model: ModelInfo | None, monthly: float | None) -> str:
    """A monthly cost, with the range its calibration rounds give when it is priced by the GPU hour."""
    spread = model.monthly_range(monthly) if model else None
    return view.money(monthly) + (f" ({view.money(spread[0])}–{view.money(spread[1])})" if spread else "")


def _entry(case: CaseResult) -> str:
    what = view.outcome(case)
    # Raw HTML: Markdown escapes do not apply there, and <code> keeps GitHub from linking @mentions.
    lines = [f"<details><summary>{what} · <b>{html.escape(case.candidate or 'replay')}</b> · "
             f"<code>{html.escape(case.contract)}</code> · <code>{html.escape(case.case_id)}</code></summary>", ""]
    message = view.strip_paths(case.check_message or case.failure)
    if message:
        lines += [f"check: {_code(message[:300])}", ""]
    if case.exceeded:
        lines += [f"beyond tolerance: {', '.join(_code(m) for m in case.exceeded)}", ""]
    lines += [short_diff(view.golden_text(case), view.output_text(case)), "", "</details>", ""]
    return "\n".join(lines)


def render_markdown(results: RunResults, limit: int = DEFAULT_LIMIT) -> str:
    """The PR summary, at most ``limit`` UTF-8 bytes; the list of cases that need attention is cut to fit."""
    candidates = view.candidate_views(results)
    note_room = 200  # kept free for the closing note and the marker
    head = "\n".join(_header(results, candidates) + _details(results, candidates))
    if _size(head) + note_room > limit:
        # Only a pathological run (thousands of candidates) gets here: cut the tables at a line.
        head = _fit(head, limit - note_room)
    order = {c.model.name: i for i, c in enumerate(candidates)}
    attention = sorted((c for c in results.cases if c.candidate is not None and view.needs_attention(c)),
                       key=lambda c: (order.get(c.candidate, len(order)), view.attention_key(c)))
    title = "\n### Cases that need attention\n\n" if attention else ""
    used = _size(head) + _size(title) + note_room
    body: list[str] = []
    per_candidate: dict[str, int] = {}
    for case in attention:
        if per_candidate.get(case.candidate, 0) >= CASES_PER_CANDIDATE:
            continue
        entry = _entry(case)
        if used + _size(entry) > limit:
            break
        body.append(entry)
        used += _size(entry)
        per_candidate[case.candidate] = per_candidate.get(case.candidate, 0) + 1
    text = head + title + "".join(body)
    if len(body) < len(attention):
        text += (f"\n_{plural(len(attention) - len(body), 'more case')} that need attention are not listed here; "
                 "the HTML report and the results JSON have every case._\n")
    return text + "\n" + MARKER + "\n"


def _fit(text: str, limit: int) -> str:
    lines, out, used = text.split("\n"), [], 0
    for line in lines:
        if used + _size(line) + 1 > limit:
            break
        out.append(line)
        used += _size(line) + 1
    return "\n".join(out) + "\n"


def publish_markdown(results: RunResults, path: str | Path | None = None,
                     limit: int = DEFAULT_LIMIT) -> list[Path]:
    """Write the summary to ``path`` (if given) and append it to the GitHub job summary (if set).

    Returns the files written, for the terminal summary.
    """
    text = render_markdown(results, limit)
    written = []
    if path is not None:
        path = Path(path)
        write_text(path, text)
        written.append(path)
    if append_step_summary(text):
        written.append(Path(os.environ["GITHUB_STEP_SUMMARY"]))
    return written


def append_step_summary(text: str) -> bool:
    """Append ``text`` to the GitHub Actions job summary when ``GITHUB_STEP_SUMMARY`` is set; True if written."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    append_text(Path(target), text if text.endswith("\n") else text + "\n")
    return True
