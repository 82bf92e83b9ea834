"""Style fingerprint and style distance."""

from __future__ import annotations

import json

import pytest

from pytest_llmswap.drift.style import length_ratio, style_components, style_distance, style_fingerprint

MARKDOWN = """# Triage

Summary of the ticket. It is about billing.

- category: billing
- priority: high
1. refund the invoice

| field | value |
|-------|-------|
| id    | 42    |

```python
# not a heading
- not a bullet
print("hi")
```
"""


def test_fingerprint_counts_markdown_outside_code() -> None:
    fp = style_fingerprint(MARKDOWN)
    assert (fp.headings, fp.bullets, fp.code_blocks, fp.tables) == (1, 3, 1, 1)
    assert fp.chars == len(MARKDOWN)
    json.dumps(fp.to_dict())


def test_fingerprint_words_sentences_and_diversity() -> None:
    fp = style_fingerprint("The cat sat. The cat ran away!")
    assert fp.words == 7
    assert fp.sentences == 2
    assert fp.mean_sentence_words == pytest.approx(3.5)
    assert fp.distinct_1 == pytest.approx(5 / 7)  # the, cat, sat, ran, away
    assert fp.distinct_2 == pytest.approx(5 / 6)  # "the cat" appears twice among 6 bigrams
    empty = style_fingerprint("")
    assert (empty.words, empty.sentences, empty.distinct_1, empty.distinct_2) == (0, 0, 0.0, 0.0)


def test_refusal_and_hedging_markers() -> None:
    refusal = style_fingerprint("I'm sorry, but I can't help with that request.")
    assert refusal.refusals >= 1
    assert style_fingerprint("The invoice total is 40 EUR.").refusals == 0
    hedged = style_fingerprint("It might be billing, but I think it could be a bug. Perhaps both.")
    assert hedged.hedges == 4  # might, i think, could be, perhaps
    assert style_fingerprint("It is billing.").hedges == 0


def test_identical_texts_have_distance_zero() -> None:
    assert style_distance(MARKDOWN, MARKDOWN) == 0.0
    assert style_distance("", "") == 0.0
    assert set(style_components("a", "b")) == {"length", "diversity", "sentence_length", "markdown", "refusal",
                                                 "hedging"}


def test_distance_orders_style_changes() -> None:
    golden = "The ticket is about billing. Route it to finance."
    reworded = "This request concerns billing. Send it to finance."
    refusal = "I'm sorry, but I cannot help with that. As an AI, I must decline."
    bulleted = "## Answer\n\n- billing\n- finance\n\n```\nroute(ticket)\n```"
    d_reworded = style_distance(golden, reworded)
    assert d_reworded < 0.1
    assert style_distance(golden, refusal) > d_reworded + 0.15
    assert style_distance(golden, bulleted) > d_reworded + 0.15
    assert style_components(golden, refusal)["refusal"] == 1.0
    for other in (reworded, refusal, bulleted, ""):
        assert 0.0 <= style_distance(golden, other) <= 1.0
        assert style_distance(golden, other) == pytest.approx(style_distance(other, golden))


def test_distance_is_the_mean_of_its_components() -> None:
    a, b = "Short answer.", "A much longer answer, perhaps, with more words in several sentences. Yes. No."
    parts = style_components(a, b)
    assert style_distance(a, b) == pytest.approx(sum(parts.values()) / 6)
    assert parts["length"] == pytest.approx(1 - 2 / 13)  # 2 words against 13


def test_length_ratio() -> None:
    assert length_ratio("abcd", "ab") == 0.5
    assert length_ratio("ab", "abcd") == 2.0
    assert length_ratio("", "") == 1.0
    assert length_ratio("", "x") is None
