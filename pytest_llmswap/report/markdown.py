"""The pull-request summary in GitHub-flavoured Markdown: verdicts, switching cost, top regressions.

Always under a size limit (a PR comment holds 65,536 characters): the regression list is cut with a note.
Model output is untrusted here too: it only appears inside code fences longer than any backtick run it
contains, so it cannot close the fence, render HTML, embed images or mention people.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from ..files import write_text
from . import view
from ..results import CaseResult, RunResults

DEFAULT_LIMIT = 60_000
#: Most cases listed per candidate, before the size limit even applies: a PR comment is a summary.
CASES_PER_CANDIDATE = 25
SNIPPET_CHARS = 240

_PUNCT = re.compile(r"([\\`*_\[\]<>|#@!~])")
_ICON = {"drop-in": "✅", "migrate with rework": "⚠️", "not recommended": "❌", "inconclusive": "❔"}


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
    return len(text.encode("utf-8"))


def _header(results: RunResults, candidates: list[view.CandidateView]) -> list[str]:
    inc = results.incumbent
    incumbent = results.summaries.incumbent if results.summaries else None
    lines = ["## pytest-llmswap: model migration report", ""]
    who = f"Incumbent **{_text(inc.name)}** ({_code(inc.resolved_id or inc.spec)})" if inc else "No incumbent"
    lines += [f"{who} · {len(candidates)} candidate(s) · {len(results.cases):,} case row(s) in "
              f"{len(results.contracts)} contract(s) · run at {_text(results.created_at)}", ""]
    if not candidates:
        return lines
    lines += ["| candidate | verdict | pass rate [95% CI] | failed calls | regressions / improvements | beyond tolerance "
              "| monthly cost (Δ) | latency p50 / p95 | tokens / task | break-even |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        s, sw = c.summary, c.switching
        if s is None or sw is None:
            lines.append(f"| **{_text(c.model.name)}** | no summary |" + " — |" * 8)
            continue
        ci = s.pass_rate_ci
        rate = view.pct(s.pass_rate) + (f" [{view.pct(ci[0])}, {view.pct(ci[1])}]" if ci else "")
        monthly = "unknown"
        if sw.candidate_monthly_usd is not None and sw.monthly_delta_usd is not None:
            delta = sw.monthly_delta_usd
            monthly = f"{view.money(sw.candidate_monthly_usd)} ({'+' if delta > 0 else ''}{view.money(delta)})"
        lines.append(" | ".join([
            f"| **{_text(c.model.name)}**", f"{_ICON.get(c.label, '')} {c.label}", rate, str(s.failed_calls),
            f"{s.regressions:g} / {s.improvements:g}", str(s.exceeded), monthly,
            f"{view.seconds(s.usage.latency_p50)} / {view.seconds(s.usage.latency_p95)}",
            view.number(s.usage.tokens_per_task, 4), view.months(sw)]) + " |")
    if incumbent:
        monthly = next((c.switching.incumbent_monthly_usd for c in candidates if c.switching), None)
        lines += ["", f"Incumbent: pass rate {view.pct(incumbent.golden_pass_rate)} on its goldens, "
                      f"{view.money(monthly)} per month, latency p50 {view.seconds(incumbent.usage.latency_p50)} / "
                      f"p95 {view.seconds(incumbent.usage.latency_p95)}, "
                      f"{view.number(incumbent.usage.tokens_per_task, 4)} tokens per task."]
    rate = view.money(results.settings.get("hourly_rate", 100.0))
    lines += ["", "### Switching cost", "", f"Rework at {rate} per hour for every contract with a regression or "
              "drift beyond tolerance; break-even = rework / monthly saving.", "",
              "| candidate | contracts to rework | rework | monthly saving | break-even |", "|---|---|---|---|---|"]
    for c in candidates:
        sw = c.switching
        if sw is None:
            continue
        names = sw.rework_contracts
        shown = ", ".join(_code(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        lines.append(f"| **{_text(c.model.name)}** | {shown or 'none'} | {view.number(sw.rework_hours)} h = "
                     f"{view.money(sw.rework_usd)} | {view.money(sw.monthly_saving_usd)} | {view.months(sw)} |")
    lines += ["", "<details><summary>Why each verdict</summary>", ""]
    lines += [f"- **{_text(c.model.name)}** ({c.label}): {_text('; '.join(c.verdict.reasons if c.verdict else ()))}"
              for c in candidates]
    lines += ["", "</details>", ""]
    return lines


def _entry(case: CaseResult) -> str:
    what = view.outcome(case)
    # Raw HTML: Markdown escapes do not apply there, and <code> keeps GitHub from linking @mentions.
    lines = [f"<details><summary>{what} · <b>{html.escape(case.candidate or 'replay')}</b> · "
             f"<code>{html.escape(case.contract)}</code> · <code>{html.escape(case.case_id)}</code></summary>", ""]
    message = case.check_message or case.failure
    if message:
        lines += [f"check: {_code(message[:300])}", ""]
    if case.exceeded:
        lines += [f"beyond tolerance: {', '.join(_code(m) for m in case.exceeded)}", ""]
    lines += [short_diff(view.golden_text(case), view.output_text(case)), "", "</details>", ""]
    return "\n".join(lines)


def render_markdown(results: RunResults, limit: int = DEFAULT_LIMIT) -> str:
    """The PR summary, at most ``limit`` UTF-8 bytes; the list of cases that need attention is cut to fit."""
    candidates = view.candidate_views(results)
    note_room = 200  # kept free for the closing note
    head = "\n".join(_header(results, candidates))
    if _size(head) + note_room > limit:
        # Only a pathological run (thousands of candidates) gets here: cut the tables at a line.
        head = _fit(head, limit - note_room)
    order = {c.model.name: i for i, c in enumerate(candidates)}
    attention = sorted((c for c in results.cases if c.candidate is not None and view.needs_attention(c)),
                       key=lambda c: (order.get(c.candidate, len(order)), view.attention_key(c)))
    title = "\n### Top regressions and failures\n\n" if attention else ""
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
        text += (f"\n_{len(attention) - len(body):,} more case(s) that need attention are not listed here; "
                 "the HTML report and the results JSON have every case._\n")
    return text


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
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return True
