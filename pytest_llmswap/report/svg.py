"""Inline SVG charts for the HTML report: the capability-versus-cost plane and drift histograms.

Every piece of text that reaches the markup goes through ``Markup.format``, which escapes its arguments, so a
model or contract name cannot inject markup. Numbers are formatted here; nothing else is interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .view import money

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


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], int]:
    """Round ticks (steps of 1, 2 or 5 times a power of ten) covering [lo, hi], and the decimals that print
    each one exactly, so that a tick never reads 98% where it is 97.5%."""
    raw = (hi - lo) / max(1, count - 1) or 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]
    return ticks, max(0, -math.floor(math.log10(step) + 1e-9))


def _tick_money(value: float, decimals: int) -> str:
    """A tick label; ``decimals`` -1 for a power of ten, printed with exactly its own decimals."""
    if decimals < 0:
        decimals = max(0, -round(math.log10(value)))
    return f"${value:,.{decimals}f}"


def frontier(points: Sequence[PlanePoint]) -> list[PlanePoint]:
    """The priced points that no cheaper point matches in pass rate: the cheapest at each quality."""
    best: list[PlanePoint] = []
    for p in sorted((p for p in points if p.cost_per_1k is not None), key=lambda q: (q.cost_per_1k, -q.pass_rate)):
        if not best or p.pass_rate > best[-1].pass_rate:
            best.append(p)
    return best


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_label(x: float, y: float, width: float, taken: list[Box], bounds: Box) -> tuple[float, float, str]:
    """A spot for a label near its marker that overlaps no marker or label already placed and stays inside
    ``bounds``: right, left, above, below, then further out. Returns (x, baseline y, text-anchor)."""
    h = 13.0
    spots = [(dx, dy) for r in (0, 1, 2, 3, 4, 6, 8) for dx, dy in
             ((10, 4 + 14 * r), (-10, 4 + 14 * r), (10, 4 - 14 * r), (-10, 4 - 14 * r), (0, -11 - 14 * r),
              (0, 19 + 14 * r))]
    chosen = None
    for dx, dy in spots:
        left = x + dx if dx > 0 else x + dx - width if dx < 0 else x - width / 2
        box = (left, y + dy - h + 2, left + width, y + dy + 3)
        inside = bounds[0] <= box[0] and box[2] <= bounds[2] and bounds[1] <= box[1] and box[3] <= bounds[3]
        if inside and not any(_overlaps(box, t) for t in taken):
            chosen = (box, dx, dy)
            break
    if chosen is None:  # more labels than room: keep the first spot inside the picture
        dx, dy = spots[0]
        chosen = ((x + dx, y + dy - h + 2, x + dx + width, y + dy + 3), dx, dy)
    box, dx, dy = chosen
    taken.append(box)
    anchor = "start" if dx > 0 else "end" if dx < 0 else "middle"
    return x + dx, y + dy, anchor


def capability_cost_plane(points: Sequence[PlanePoint], width: int = 620, height: int = 380) -> Markup:
    """Pass rate (y) against cost per 1,000 calls (x), priced points only; a log x axis when costs span more
    than 10x. Each point carries its 95% interval as a bar; a dashed step line joins the cheapest point at
    each pass rate (the frontier)."""
    left, right, top, bottom = 64, 24, 20, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    priced = [p for p in points if p.cost_per_1k is not None]
    costs = [p.cost_per_1k for p in priced if p.cost_per_1k is not None]
    log_x = bool(costs) and min(costs) > 0 and max(costs) / min(costs) > 10
    if log_x:
        e_lo, e_hi = math.floor(math.log10(min(costs))), math.ceil(math.log10(max(costs)))
        e_hi = max(e_hi, e_lo + 1)
        x_ticks, x_lo, x_hi = [10.0 ** e for e in range(e_lo, e_hi + 1)], float(e_lo), float(e_hi)
        x_decimals = -1  # each power of ten prints its own decimals
    else:
        x_ticks, x_decimals = nice_ticks(0.0, max(costs) * 1.15 if costs and max(costs) > 0 else 1.0)
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    lows = [min(p.pass_rate, p.ci[0] if p.ci else p.pass_rate) for p in priced] or [0.0]
    # Zoom to the interesting band: differences of a few points must stay visible.
    y_ticks, y_decimals = nice_ticks(max(0.0, min(min(lows) - 0.01, 0.9)), 1.0)
    y_lo, y_hi = y_ticks[0], max(1.0, y_ticks[-1])
    y_ticks = [t for t in y_ticks if t <= 1.0 + 1e-9]

    def sx(cost: float) -> float:
        pos = (math.log10(cost) - x_lo) / (x_hi - x_lo) if log_x else (cost - x_lo) / (x_hi - x_lo)
        return left + pos * plot_w

    def sy(rate: float) -> float:
        return top + (1 - (rate - y_lo) / (y_hi - y_lo)) * plot_h

    parts = [_M('<svg xmlns="http://www.w3.org/2000/svg" class="chart plane" role="img" viewBox="0 0 {} {}" '
                'width="{}" height="{}" aria-label="capability versus cost">').format(width, height, width, height),
             _M('<rect x="{}" y="{}" width="{}" height="{}" class="plot-bg"/>').format(left, top, plot_w, plot_h)]
    for rate in y_ticks:
        y = sy(rate)
        parts.append(_M('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/>'
                        '<text x="{}" y="{:.1f}" class="tick" text-anchor="end">{}</text>')
                     .format(left, left + plot_w, y, y, left - 6, y + 4,
                             f"{rate * 100:.{max(0, y_decimals - 2)}f}%"))
    for cost in x_ticks:
        x = sx(cost)
        parts.append(_M('<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="grid"/>'
                        '<text x="{:.1f}" y="{}" class="tick" text-anchor="middle">{}</text>')
                     .format(x, x, top, top + plot_h, x, top + plot_h + 16, _tick_money(cost, x_decimals)))
    parts.append(_M('<text x="{}" y="{}" class="axis" text-anchor="middle">cost per 1,000 calls (USD{})</text>'
                    '<text x="14" y="{}" class="axis" text-anchor="middle" transform="rotate(-90 14 {})">'
                    'pass rate</text>')
                 .format(left + plot_w / 2, height - 8, ", log scale" if log_x else "", top + plot_h / 2,
                         top + plot_h / 2))
    best = frontier(priced)
    if len(best) > 1:
        steps = [(sx(p.cost_per_1k), sy(p.pass_rate)) for p in best if p.cost_per_1k is not None]
        path = "M" + " ".join(f"{x:.1f} {y0:.1f} L{x1:.1f} {y0:.1f} L{x1:.1f} {y1:.1f}"
                              for (x, y0), (x1, y1) in zip(steps, steps[1:]))
        parts.append(_M('<path d="{}" class="frontier"><title>cheapest at each pass rate</title></path>')
                     .format(path))
    # Every marker is placed before any label, so that no label is drawn under a later marker.
    taken: list[Box] = []
    for p in priced:
        x, y = sx(p.cost_per_1k), sy(p.pass_rate)
        tip = f"{p.label}: pass rate {p.pass_rate:.1%}, {money(p.cost_per_1k)} per 1,000 calls"
        if p.ci:
            parts.append(_M('<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" class="errbar"/>')
                         .format(x, x, sy(p.ci[0]), sy(p.ci[1])))
        shape = ('<path d="M{x:.1f} {t:.1f} L{r:.1f} {y:.1f} L{x:.1f} {b:.1f} L{l:.1f} {y:.1f} Z" class="point {c}">'
                 if p.incumbent else '<circle cx="{x:.1f}" cy="{y:.1f}" r="6" class="point {c}">')
        close = "</path>" if p.incumbent else "</circle>"
        parts.append(_M(shape + "<title>{tip}</title>" + close).format(
            x=x, y=y, t=y - 8, b=y + 8, l=x - 8, r=x + 8, c=p.css + (" front" if p in best else ""), tip=tip))
        taken.append((x - 8, y - 8, x + 8, y + 8))
    for p in sorted(priced, key=lambda q: (not q.incumbent, q.cost_per_1k, -q.pass_rate)):
        x, y = sx(p.cost_per_1k), sy(p.pass_rate)
        lx, ly, anchor = _place_label(x, y, 7.2 * len(p.label) + 2, taken, (0, 0, width, height - 26))
        parts.append(_M('<text x="{:.1f}" y="{:.1f}" class="label" text-anchor="{}">{}</text>')
                     .format(lx, ly, anchor, p.label))
    parts.append(_M("</svg>"))
    return _M("").join(parts)


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
