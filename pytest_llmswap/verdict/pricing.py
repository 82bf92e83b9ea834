"""What one call costs: configured token prices, a GPU hour at the model's calibrated throughput, or litellm's table.

Pure functions over typed answers (a :class:`~pytest_llmswap.types.Response`). A GPU-hour price is never spread over
recorded latencies: latency depends on the load of the machine and on how many calls shared it, so the
same model recorded twice could cost 40x apart. Instead the output tokens of a call are divided by the
model's *calibrated* throughput (GPU-hour models are timed side by side on the same prompts once per
checkpoint and hardware, see ``models/throughput.py`` and ``models/throughput_store.py``): calls that ran
concurrently share the hour they used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..types import Prices, Response

GPU_HOUR_UNMEASURED = "priced per GPU hour, but its throughput was not measured in this run"


@dataclass(frozen=True)
class Pricing:
    """How a model's calls are priced: its configured prices and its calibrated throughput."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    gpu_hour_usd: float | None = None
    throughput_tok_s: float | None = None

    @classmethod
    def of(cls, prices: Prices | None, throughput_tok_s: float | None = None) -> Pricing:
        prices = prices or Prices()
        return cls(prices.input_per_mtok, prices.output_per_mtok, prices.gpu_hour_usd, throughput_tok_s)

    @property
    def per_token(self) -> bool:
        return self.input_per_mtok is not None or self.output_per_mtok is not None

    @property
    def basis(self) -> str:
        """How the calls are priced, in words for the report."""
        if self.per_token:
            return (f"configured token prices (${self.input_per_mtok or 0:g} in, ${self.output_per_mtok or 0:g} "
                    "out per million tokens)")
        if self.gpu_hour_usd is not None:
            if self.throughput_tok_s is None:
                return f"${self.gpu_hour_usd:g} per GPU hour; {GPU_HOUR_UNMEASURED}"
            return f"${self.gpu_hour_usd:g} per GPU hour at {self.throughput_tok_s:,.0f} output tokens/s calibrated"
        return "litellm's price table (cost recorded with each call)"

    def call_cost(self, response: Response | None) -> float | None:
        """Cost in USD of one call, or None when nothing prices it (docs/cost.md, "Cost per call")."""
        if response is None:
            return None
        usage = response.usage
        if self.per_token:
            # output_tokens are the provider's completion tokens, which already include reasoning tokens.
            return (usage.input_tokens * (self.input_per_mtok or 0.0)
                    + usage.output_tokens * (self.output_per_mtok or 0.0)) / 1e6
        if self.gpu_hour_usd is not None:
            if not self.throughput_tok_s:
                return None
            return self.gpu_hour_usd / 3600.0 * usage.output_tokens / self.throughput_tok_s
        cost = response.cost_usd
        return None if cost is None else float(cost)

    def mean_cost(self, responses: Iterable[Response | None]) -> float | None:
        """Mean cost per call; None if any call cannot be priced (a partial mean would lie)."""
        costs = [self.call_cost(r) for r in responses if r is not None]
        if not costs or any(c is None for c in costs):
            return None
        return sum(costs) / len(costs)  # type: ignore[arg-type]
