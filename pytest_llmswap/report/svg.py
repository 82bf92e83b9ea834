"""Inline SVG charts for the HTML report: the capability-versus-cost plane and drift histograms.

Every piece of text that reaches the markup goes through ``Markup.format``, which escapes its arguments, so a
model or contract name cannot inject markup. Numbers are formatted here; nothing else is interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

_M = Markup  # short alias: the templates below are format strings whose arguments get escaped


@dataclass(frozen=True)
class PlanePoint:
    """One model on the plane: its pass rate (with interval) and cost per 1,000 calls (None when unpriced)."""

    label: str
    pass_rate: float
    cost_per_1k: float | None
    ci: tuple[float, float] | None = None
    incumbent: bool = False
    css: str = ""


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / (count - 1)
    return [lo + i * step for i in range(count)]


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.1 else f"${value:.3g}"


def capability_cost_plane(points: Sequence[PlanePoint], width: int = 620, height: int = 360) -> Markup:
    """Pass rate (y) against cost per 1,000 calls (x); a log x axis when costs span more than 10x."""
    left, right, top, bottom = 64, 150, 20, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    priced = [p for p in points if p.cost_per_1k is not None]
    costs = [p.cost_per_1k for p in priced]
    log_x = bool(costs) and min(costs) > 0 and max(costs) / min(costs) > 10
    if log_x:
        x_lo, x_hi = math.floor(math.log10(min(costs))), math.ceil(math.log10(max(costs)))
        x_hi = max(x_hi, x_lo + 1)
    else:
        x_lo, x_hi = 0.0, (max(costs) * 1.15 if costs and max(costs) > 0 else 1.0)
    lows = [min(p.pass_rate, p.ci[0] if p.ci else p.pass_rate) for p in points] or [0.0]
    # Zoom to the interesting band: differences of a few points must stay visible.
    y_lo = max(0.0, min(math.floor(min(lows) * 10) / 10, 0.9))
    y_hi = 1.0

    def sx(cost: float) -> float:
        pos = (math.log10(cost) - x_lo) / (x_hi - x_lo) if log_x else (cost - x_lo) / (x_hi - x_lo)
        return left + pos * plot_w

    def sy(rate: float) -> float:
        return top + (1 - (rate - y_lo) / (y_hi - y_lo)) * plot_h

    parts = [_M('<svg xmlns="http://www.w3.org/2000/svg" class="chart plane" role="img" viewBox="0 0 {} {}" '
                'width="{}" height="{}" aria-label="capability versus cost">').format(width, height, width, height),
             _M('<rect x="{}" y="{}" width="{}" height="{}" class="plot-bg"/>').format(left, top, plot_w, plot_h)]
    for rate in _ticks(y_lo, y_hi):
        y = sy(rate)
        parts.append(_M('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/>'
                        '<text x="{}" y="{:.1f}" class="tick" text-anchor="end">{}</text>')
                     .format(left, left + plot_w, y, y, left - 6, y + 4, f"{rate:.0%}"))
    x_ticks = [10.0 ** e for e in range(int(x_lo), int(x_hi) + 1)] if log_x else _ticks(x_lo, x_hi)
    for cost in x_ticks:
        x = sx(cost)
        parts.append(_M('<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="grid"/>'
                        '<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>')
                     .format(x, x, top, top + plot_h, x, top + plot_h + 16, _money(cost)))
    parts.append(_M('<text x="{}" y="{}" class="axis" text-anchor="middle">cost per 1,000 calls (USD{})</text>'
                    '<text x="14" y="{}" class="axis" text-anchor="middle" transform="rotate(-90 14 {})">'
                    'pass rate</text>')
                 .format(left + plot_w / 2, height - 8, ", log scale" if log_x else "", top + plot_h / 2,
                         top + plot_h / 2))
    placed: list[tuple[float, float, float]] = []  # label boxes (x, y, width) already drawn
    for p in sorted(priced, key=lambda q: (q.cost_per_1k, -q.pass_rate)):
        x, y = sx(p.cost_per_1k), sy(p.pass_rate)
        tip = f"{p.label}: pass rate {p.pass_rate:.1%}, {_money(p.cost_per_1k)} per 1,000 calls"
        if p.ci:
            parts.append(_M('<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" class="errbar"/>')
                         .format(x, x, sy(p.ci[0]), sy(p.ci[1])))
        shape = ('<path d="M{x:.1f} {t:.1f} L{r:.1f} {y:.1f} L{x:.1f} {b:.1f} L{l:.1f} {y:.1f} Z" class="point {c}">'
                 if p.incumbent else '<circle cx="{x:.1f}" cy="{y:.1f}" r="6" class="point {c}">')
        close = "</path>" if p.incumbent else "</circle>"
        parts.append(_M(shape + "<title>{tip}</title>" + close).format(
            x=x, y=y, t=y - 8, b=y + 8, l=x - 8, r=x + 8, c=p.css, tip=tip))
        label_y = _free_row(placed, x + 10, y + 4, 7.0 * len(p.label))
        parts.append(_M('<text x="{:.1f}" y="{:.1f}" class="label">{}</text>').format(x + 10, label_y, p.label))
    unpriced = [p.label for p in points if p.cost_per_1k is None]
    if unpriced:
        parts.append(_M('<text x="{}" y="{}" class="note">not priced (not on the plane): {}</text>')
                     .format(left + plot_w + 8, top + 12, ", ".join(unpriced)))
    parts.append(_M("</svg>"))
    return _M("").join(parts)


def _free_row(placed: list[tuple[float, float, float]], x: float, y: float, width: float) -> float:
    """The first baseline at or below ``y`` where a label of ``width`` overlaps none already placed."""
    while any(abs(y - py) < 13 and x < px + pw and px < x + width for px, py, pw in placed):
        y += 14
    placed.append((x, y, width))
    return y


def histogram(values: Sequence[float], noise_floor: float | None = None, *, bins: int = 24, width: int = 300,
              height: int = 120) -> Markup:
    """Histogram of one metric's per-case values with the noise floor as a dashed line."""
    left, right, top, bottom = 8, 8, 14, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    marks = list(values) + ([noise_floor] if noise_floor is not None else [])
    lo, hi = (min(marks), max(marks)) if marks else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top_count = max(counts) or 1
    bar_w = plot_w / bins
    parts = [_M('<svg xmlns="http://www.w3.org/2000/svg" class="chart hist" role="img" viewBox="0 0 {} {}" '
                'width="{}" height="{}">').format(width, height, width, height)]
    for i, count in enumerate(counts):
        if not count:
            continue
        # At least 2px so that a tail of a few drifted cases stays visible next to a tall mode.
        h = max(2.0, count / top_count * plot_h)
        b_lo = lo + i * (hi - lo) / bins
        parts.append(_M('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="bar">'
                        "<title>{} case(s) in [{}, {})</title></rect>")
                     .format(left + i * bar_w + 0.5, top + plot_h - h, bar_w - 1, h, count, f"{b_lo:.3g}",
                             f"{b_lo + (hi - lo) / bins:.3g}"))
    if noise_floor is not None:
        x = left + (noise_floor - lo) / (hi - lo) * plot_w
        parts.append(_M('<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="floor"/>'
                        '<text x="{:.1f}" y="{}" class="floor-label" text-anchor="{}">noise floor {}</text>')
                     .format(x, x, top - 4, top + plot_h, x, top - 4 + 2, "end" if x > width / 2 else "start",
                             f"{noise_floor:.3g}"))
    parts.append(_M('<line x1="{}" x2="{}" y1="{}" y2="{}" class="axisline"/>'
                    '<text x="{}" y="{}" class="tick">{}</text>'
                    '<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>'
                    '<text x="{}" y="{}" class="tick" text-anchor="middle">max {} per bin</text></svg>')
                 .format(left, left + plot_w, top + plot_h, top + plot_h, left, height - 6, f"{lo:.3g}",
                         left + plot_w, height - 6, f"{hi:.3g}", width / 2, height - 6, top_count))
    return _M("").join(parts)
