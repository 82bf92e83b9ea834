"""The built-in ``echo`` model: answers with the rendered prompt, for wiring a suite and for benchmarks."""

from __future__ import annotations

from ..types import ModelCallError, ModelSpec, Request, Response, Usage
from .base import AnswerCallback, reject_empty


class EchoBackend:
    """Returns the last user message unchanged; token counts are whitespace-separated words."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def complete(self, requests: list[Request],
                 on_answer: AnswerCallback | None = None) -> list[Response | ModelCallError]:
        out: list[Response | ModelCallError] = []
        for i, req in enumerate(requests):
            text = next((c for r, c in reversed(req.messages) if r == "user"), "")
            usage = Usage(input_tokens=sum(len(c.split()) for _, c in req.messages), output_tokens=len(text.split()))
            answer = reject_empty("echo", req, Response(text=text, model="echo", usage=usage, latency_s=0.0,
                                                        cost_usd=0.0, finish_reason="stop"))
            out.append(answer)
            if on_answer is not None:
                on_answer(i, answer)
        return out

    def resolved_model_id(self) -> str:
        return "echo"
