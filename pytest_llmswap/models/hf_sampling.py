"""Decoding parameters of ``hf:`` models: which ones exist, their values, and the per-row sampler.

A parameter may be set on the named model (``[tool.llmswap.models.X] temperature = 0.8``, in
``ModelSpec.params``) or on the contract (``Request.params``, which wins). Local generation knows only
:data:`HF_PARAMS`; anything else (``frequency_penalty``, ``stop``, ...) is refused before any call, because
a golden that claims a parameter generation ignored would be a lie.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..types import Request

HF_PARAMS = ("temperature", "top_p", "seed", "max_tokens", "max_new_tokens")


def check_hf_params(params: dict[str, Any]) -> None:
    """Raise ValueError, in one line, for a parameter local generation does not use or a bad value."""
    for name, value in params.items():
        if name not in HF_PARAMS:
            raise ValueError(f"hf models do not support the parameter {name!r}: local generation uses only "
                             f"{', '.join(HF_PARAMS)}; remove it from the model's or the contract's params")
        if value is None:
            continue
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if name == "temperature" and (number is None or number < 0):
            raise ValueError(f"hf parameter temperature={value!r} must be a number >= 0 (0 is greedy)")
        if name == "top_p" and (number is None or not 0 < number <= 1):
            raise ValueError(f"hf parameter top_p={value!r} must be a number in (0, 1]")
        if name == "seed" and not isinstance(number, int):
            raise ValueError(f"hf parameter seed={value!r} must be an integer")
        if name in ("max_tokens", "max_new_tokens") and (not isinstance(number, int) or number < 1):
            raise ValueError(f"hf parameter {name}={value!r} must be an integer >= 1")


@dataclass(frozen=True)
class Decoding:
    """How one request is decoded: greedy when ``temperature`` is 0."""

    temperature: float
    top_p: float
    seed: int  # the row generator's seed: the request key, combined with a configured ``seed``
    max_new_tokens: int | None  # None: the backend's default


def decoding(request: Request) -> Decoding:
    """The request's decoding, from the model's params overridden by the contract's."""
    params = {**request.model.param_dict, **request.param_dict}
    check_hf_params(params)
    max_new = params.get("max_new_tokens", params.get("max_tokens"))
    # request.key covers prompt, params and sample index: each sample gets its own reproducible stream.
    # A configured seed is hashed in with it, so changing the seed moves every stream.
    key = request.key if params.get("seed") is None else \
        hashlib.sha256(f"{params['seed']}\0{request.key}".encode()).hexdigest()
    seed = int(key[:8], 16)
    return Decoding(float(params.get("temperature") or 0.0), float(params.get("top_p") or 1.0), seed,
                    int(max_new) if max_new else None)


class RowSampler:
    """A logits processor that picks each row's next token itself: argmax for greedy rows, a draw from the
    row's own seeded generator for sampling rows. One batch can then mix greedy and sampled requests, and a
    sample does not depend on which other requests shared its batch."""

    def __init__(self, rows: list[Decoding]) -> None:
        import torch

        self.rows = rows
        self.generators = [torch.Generator().manual_seed(r.seed) for r in rows]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        chosen = scores.argmax(dim=-1)
        for row, (dec, generator) in enumerate(zip(self.rows, self.generators)):
            if dec.temperature <= 0:
                continue
            probs = torch.softmax(scores[row].float().cpu() / dec.temperature, dim=-1)
            if dec.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p > dec.top_p
                probs[order[drop]] = 0.0
            chosen[row] = torch.multinomial(probs, 1, generator=generator).item()
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, chosen.unsqueeze(1), 0.0)
        return forced
