"""Style fingerprint of an answer and a style distance between two answers.

The fingerprint is what a downstream reader or parser notices besides the meaning: length, vocabulary
diversity, sentence length, markdown structure, refusals and hedging. ``style_components`` compares two
fingerprints feature by feature, each component in [0, 1] (0 = same style), and ``style_distance`` is
their mean:

* ``length``: ``1 - min(words) / max(words)``
* ``diversity``: ``(|distinct1_a - distinct1_b| + |distinct2_a - distinct2_b|) / 2``
* ``sentence_length``: ``1 - min / max`` of the mean words per sentence
* ``markdown``: the mean over headings, bullets, code blocks and tables of ``1 - min(count) / max(count)``
* ``refusal``: 1 when exactly one of the two answers refuses, else 0
* ``hedging``: ``1 - min / max`` of the hedge-marker counts

Any ``1 - min / max`` term is 0 when both counts are 0.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")

# Phrases with which assistants decline a task; matched case-insensitively on word boundaries.
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:'|’)?m sorry|i am sorry|i apologi[sz]e|i (?:can(?:'|’)?t|cannot|can not|won(?:'|’)?t|will not|"
    r"am unable to|(?:'|’)?m unable to|am not able to|(?:'|’)?m not able to) (?:help|assist|provide|comply|do that|"
    r"fulfil|fulfill|answer|share|create|generate|write)|as an ai\b|i must decline|against my (?:guidelines|policy))",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:might|may|perhaps|possibly|probably|likely|unlikely|seems?|appears?|i think|i believe|i suspect|"
    r"not (?:entirely )?sure|it depends|could be|arguably|generally|typically|roughly|approximately)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StyleFingerprint:
    """Countable style features of one text."""

    chars: int
    words: int
    sentences: int
    mean_sentence_words: float
    distinct_1: float  # distinct unigrams / unigrams (0 for no words)
    distinct_2: float  # distinct bigrams / bigrams (0 for fewer than two words)
    headings: int
    bullets: int
    code_blocks: int
    tables: int
    refusals: int
    hedges: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _distinct(tokens: list[str], n: int) -> float:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _prose_and_markdown(text: str) -> tuple[str, int, int, int, int]:
    """Split off fenced code (so `# comment` in code is no heading) and count markdown blocks."""
    prose: list[str] = []
    headings = bullets = tables = fences = 0
    in_code = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fences += 1
            in_code = not in_code
            continue
        if in_code:
            continue
        prose.append(line)
        headings += bool(_HEADING.match(line))
        bullets += bool(_BULLET.match(line))
        tables += bool(_TABLE_RULE.match(line))
    # An unclosed fence still opens a code block.
    return "\n".join(prose), headings, bullets, (fences + 1) // 2, tables


def style_fingerprint(text: str) -> StyleFingerprint:
    """Measure the style features of ``text``; words are lowercased ``\\w+`` runs."""
    prose, headings, bullets, code_blocks, tables = _prose_and_markdown(text)
    words = [w.lower() for w in _WORD.findall(text)]
    sentence_lengths = [n for n in (len(_WORD.findall(s)) for s in _SENTENCE_END.split(prose)) if n]
    mean_sentence = sum(sentence_lengths) / len(sentence_lengths) if sentence_lengths else 0.0
    return StyleFingerprint(
        chars=len(text),
        words=len(words),
        sentences=len(sentence_lengths),
        mean_sentence_words=float(mean_sentence),
        distinct_1=_distinct(words, 1),
        distinct_2=_distinct(words, 2),
        headings=headings,
        bullets=bullets,
        code_blocks=code_blocks,
        tables=tables,
        refusals=len(_REFUSAL.findall(prose)),
        hedges=len(_HEDGE.findall(prose)),
    )


def _rel_diff(a: float, b: float) -> float:
    hi = max(a, b)
    return 0.0 if hi <= 0 else 1.0 - min(a, b) / hi


def length_ratio(golden_text: str, candidate_text: str) -> float | None:
    """Candidate characters / golden characters (1.0 for two empty texts, ``None`` for an empty golden)."""
    if not golden_text:
        return 1.0 if not candidate_text else None
    return len(candidate_text) / len(golden_text)


def style_components(golden_text: str, candidate_text: str) -> dict[str, float]:
    """Per-feature style distances in [0, 1] (0 = same); see the module docstring for each formula."""
    g, c = style_fingerprint(golden_text), style_fingerprint(candidate_text)
    markdown = [_rel_diff(getattr(g, k), getattr(c, k)) for k in ("headings", "bullets", "code_blocks", "tables")]
    return {
        "length": _rel_diff(g.words, c.words),
        "diversity": (abs(g.distinct_1 - c.distinct_1) + abs(g.distinct_2 - c.distinct_2)) / 2,
        "sentence_length": _rel_diff(g.mean_sentence_words, c.mean_sentence_words),
        "markdown": sum(markdown) / len(markdown),
        "refusal": float((g.refusals > 0) != (c.refusals > 0)),
        "hedging": _rel_diff(g.hedges, c.hedges),
    }


def style_distance(golden_text: str, candidate_text: str) -> float:
    """Mean of :func:`style_components`: 0 for the same style, 1 for opposite on every feature."""
    parts = style_components(golden_text, candidate_text)
    return sum(parts.values()) / len(parts)
