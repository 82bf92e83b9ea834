"""Text drift: exact match after normalisation and edit similarity (pure functions)."""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import Levenshtein

_SPACE = re.compile(r"\s+")
#: Up to this many characters (the longer normalised text) ``edit`` is exact in any case: about 10 ms.
EXACT_CHARS = 20_000
#: Above it, the work of one score is bounded by about this many cell updates (64 cells a machine word).
_CELLS = 4_000_000_000


def normalize(text: str) -> str:
    """NFKC, trimmed, runs of whitespace collapsed to one space: differences no reader would notice."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def exact(golden: str, candidate: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize(golden) == normalize(candidate))


def edit_similarity(golden: str, candidate: str) -> float:
    """Normalised Levenshtein similarity of the normalised texts, in [0, 1] (1 = identical): ``1 - d / max(len)``.

    Exact, in time linear in the length, whenever the texts are short (:data:`EXACT_CHARS`) or differ by few
    edits (the distance is computed in a band around the diagonal, as wide as the time bound allows: about
    ``len / 16`` edits at 1 MB). Long texts that differ by more are scored chunk by chunk (chunks of
    :data:`EXACT_CHARS`, at proportional positions): an alignment, so the score never exceeds the exact one and
    drift is never hidden; it is close when the edits are spread through the text, lower when text moved.
    """
    a, b = normalize(golden), normalize(candidate)
    longest = max(len(a), len(b))
    if longest <= EXACT_CHARS:
        return float(Levenshtein.normalized_similarity(a, b))
    band = _CELLS // longest
    distance = Levenshtein.distance(a, b, score_cutoff=band)  # band + 1 when the distance is larger
    if distance > band:
        distance = _chunked_distance(a, b)
    return 1.0 - distance / longest


def _chunked_distance(a: str, b: str) -> int:
    """An upper bound of the edit distance: the sum over aligned chunks (i-th of ``a`` with i-th of ``b``)."""
    chunks = -(-max(len(a), len(b)) // EXACT_CHARS)
    cut_a = [len(a) * i // chunks for i in range(chunks + 1)]
    cut_b = [len(b) * i // chunks for i in range(chunks + 1)]
    return sum(Levenshtein.distance(a[cut_a[i]:cut_a[i + 1]], b[cut_b[i]:cut_b[i + 1]]) for i in range(chunks))
