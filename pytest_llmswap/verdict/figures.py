"""How a figure is written in every report: percentages with the precision they need."""

from __future__ import annotations


def pct(value: float | None, digits: int = 1) -> str:
    """``0.1234`` -> ``12.3%``; a rate under 1% keeps two significant digits (``0.0003`` -> ``0.03%``, never
    ``0.0%``); None -> an em dash."""
    if value is None:
        return "—"
    if 0 < abs(value) < 0.01:
        return f"{value * 100:.2g}%"
    return f"{value * 100:.{digits}f}%"


def plural(count: float, word: str, words: str | None = None) -> str:
    """``1 case``, ``2 cases``, ``1,000 cases``; ``words`` for an irregular plural."""
    number = f"{count:,}" if isinstance(count, int) else f"{count:g}"
    return f"{number} {word if count == 1 else (words or word + 's')}"
