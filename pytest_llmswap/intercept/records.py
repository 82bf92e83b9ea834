"""Call records (one intercepted call: its request and response), per-case sums and tool-call agreement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..types import CallRecord


def summarize(records: Sequence[CallRecord]) -> dict[str, Any]:
    """Calls, tokens, latency and cost summed over one case; cost is None when a call has no price."""
    usages = [r.response.get("usage") or {} for r in records]
    costs = [r.response.get("cost_usd") for r in records]
    return {
        "calls": len(records),
        "input_tokens": sum(int(u.get("input_tokens", 0)) for u in usages),
        "output_tokens": sum(int(u.get("output_tokens", 0)) for u in usages),
        "latency_s": sum(float(r.response.get("latency_s") or 0.0) for r in records),
        "cost_usd": None if any(c is None for c in costs) else sum(costs),
        "tool_calls": sum(len(r.response.get("tool_calls") or ()) for r in records),
    }


def _calls(record: CallRecord) -> list[tuple[str, Any]]:
    out = []
    for call in record.response.get("tool_calls") or ():
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except json.JSONDecodeError:  # a model may emit broken JSON: compare it as text then
            args = fn.get("arguments")
        out.append((fn.get("name") or "", args))
    return out


def tool_call_agreement(golden: Sequence[CallRecord], other: Sequence[CallRecord]) -> float:
    """How far two runs of a case agree on tool calls, in [0, 1]; 1.0 when neither calls a tool.

    Calls are paired by position (the n-th LLM call of each run), and within a call tool calls by position:
    the same name with the same arguments (parsed JSON) scores 1, the same name with other arguments 0.5,
    anything else 0. A call's score is the sum over the longer list of tool calls; the result is the mean over
    calls where either side called a tool, so a run that stops calling tools, or calls more, loses agreement.
    """
    scores = []
    for i in range(max(len(golden), len(other))):
        a = _calls(golden[i]) if i < len(golden) else []
        b = _calls(other[i]) if i < len(other) else []
        if not a and not b:
            continue
        hits = sum(1.0 if ca == cb else 0.5 if ca[0] == cb[0] else 0.0 for ca, cb in zip(a, b))
        scores.append(hits / max(len(a), len(b)))
    return sum(scores) / len(scores) if scores else 1.0
