"""Text drift: exact match after normalisation and edit similarity (pure functions)."""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import Levenshtein

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, trimmed, runs of whitespace collapsed to one space: differences no reader would notice."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def exact(golden: str, candidate: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize(golden) == normalize(candidate))


def edit_similarity(golden: str, candidate: str) -> float:
    """Normalised Levenshtein similarity of the normalised texts, in [0, 1] (1 = identical)."""
    return float(Levenshtein.normalized_similarity(normalize(golden), normalize(candidate)))
