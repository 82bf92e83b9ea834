"""Test the application itself: intercept its litellm and OpenAI SDK chat calls, record, replay or reroute them.

Pure of pytest: the plugin wraps a contract's test body in :func:`intercept` with one of the handlers. See
docs/app-calls.md.
"""

from .handlers import (
    Answer,
    Candidate,
    Handler,
    InterceptError,
    Record,
    Replay,
    ReplayMismatch,
    backend_answer,
    candidate_answer,
    litellm_answer,
)
from .patch import Session, intercept, is_patched
from .records import CallRecord, summarize, tool_call_agreement

__all__ = [
    "Answer", "CallRecord", "Candidate", "Handler", "InterceptError", "Record", "Replay", "ReplayMismatch",
    "Session", "backend_answer", "candidate_answer", "intercept", "is_patched", "litellm_answer",
    "summarize", "tool_call_agreement",
]
