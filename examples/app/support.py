"""A small support application, written as real applications are: two chained litellm calls.

``triage`` asks the model for the ticket's category, priority and reference (JSON); ``draft_reply`` asks
for a reply that uses them. Nothing in this file knows about tests: pytest-llmswap intercepts its calls
(see docs/app-calls.md), so the same code is recorded on the incumbent, replayed offline and run on
candidates.
"""

from __future__ import annotations

import json
import os
from typing import Any

from litellm import completion

# The production model; under test every call is answered by the golden, the incumbent or a candidate.
MODEL = os.environ.get("SUPPORT_MODEL", "openai/gpt-4o-mini")
TRIAGE = "Triage this support ticket. Answer with JSON: category, priority and reference.\nTicket: {ticket}"
REPLY = ("Write a short, friendly reply to this {priority} priority {category} ticket."
         "{reference_note}\nTicket: {ticket}")


def triage(ticket: str) -> dict[str, Any]:
    """The ticket's ``category``, ``priority`` and ``reference`` as the model reads them."""
    response = completion(model=MODEL, messages=[{"role": "user", "content": TRIAGE.format(ticket=ticket)}],
                          temperature=0, max_tokens=48)
    return json.loads(response.choices[0].message.content)


def draft_reply(ticket: str, triaged: dict[str, Any]) -> str:
    """A reply to the customer, written with the triage result (the second call of the chain)."""
    reference = triaged.get("reference")
    prompt = REPLY.format(ticket=ticket, category=triaged.get("category"), priority=triaged.get("priority"),
                          reference_note=f" Quote the reference {reference}." if reference else "")
    response = completion(model=MODEL, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=48)
    return response.choices[0].message.content or ""


def handle(ticket: str) -> dict[str, Any]:
    """Triage the ticket, then draft the reply: what the support desk stores for each ticket."""
    triaged = triage(ticket)
    return {**triaged, "reply": draft_reply(ticket, triaged)}
