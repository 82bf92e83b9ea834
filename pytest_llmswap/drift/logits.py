"""Teacher-forced logit drift: KL divergence and top-1 agreement on the golden answer's tokens.

Dutta et al. 2024, "Accuracy is Not All You Need": compressed models that keep benchmark accuracy still flip
answers; the KL divergence between the baseline's and the compressed model's next-token distributions, with both
fed the same tokens, measures that drift directly. Here both are fed the prompt plus the golden answer.

The math here is pure numpy on arrays; running a model (``HFBackend.teacher_forced_logprobs_many``, batched) is
the backend's job. :func:`logit_drift_many` scores a run's items in one batched call and keeps the results in a
SQLite file, so a cached re-run does no forward pass and loads no model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..types import Response, TokenLogprob
from .sqlite_cache import SqliteCache

Messages = Sequence[tuple[str, str]]
_CACHE_FILE = "logit_drift.sqlite3"
_CACHE_VERSION = 1  # bump when the scoring changes, so older cached results are not reused


@dataclass(frozen=True)
class LogitDrift:
    """KL(golden -> candidate) per answer token, summarised; ``applicable`` False says why in ``reason``."""

    applicable: bool
    mean_kl: float | None = None
    max_kl: float | None = None
    top1_agreement: float | None = None
    n_tokens: int = 0
    method: str = ""  # "full" (both distributions complete) or "topk" (golden's stored top-k plus the rest)
    reason: str = ""

    @classmethod
    def not_applicable(cls, reason: str) -> LogitDrift:
        return cls(applicable=False, reason=reason)


class TeacherForcer(Protocol):
    """A local model that can score a given answer (``HFBackend`` is one)."""

    def teacher_forced_logprobs_many(self, items: Sequence[tuple[Messages, str, bool]]
                                     ) -> list[tuple[list[int], np.ndarray]]: ...

    def vocab_fingerprint(self) -> str: ...

    def resolved_model_id(self) -> str: ...


def kl_per_position(p_logprobs: np.ndarray, q_logprobs: np.ndarray) -> np.ndarray:
    """KL(p || q) in nats for each row of two ``(positions, vocab)`` log-probability arrays."""
    p_log = np.asarray(p_logprobs, dtype=np.float64)
    q_log = np.asarray(q_logprobs, dtype=np.float64)
    p = np.exp(p_log)
    # 0 * log 0 = 0: tokens where p is zero contribute nothing, even where q is zero too (inf - inf).
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (p_log - q_log), 0.0)
    return np.maximum(terms.sum(axis=-1), 0.0)


def topk_kl_per_position(golden: Sequence[TokenLogprob], q_logprobs: np.ndarray) -> np.ndarray:
    """KL(golden || candidate) with the golden known only on its stored top-k tokens.

    Both distributions are coarsened to k + 1 outcomes: the golden's top-k tokens and "any other token" (the
    remaining mass). By the data-processing inequality this is a lower bound on the full KL.
    """
    q_log = np.asarray(q_logprobs, dtype=np.float64)
    out = np.zeros(len(golden))
    for pos, entry in enumerate(golden):
        ids = np.array([i for i, _ in entry.top], dtype=np.int64)
        p = np.exp(np.array([lp for _, lp in entry.top], dtype=np.float64))
        q = np.exp(q_log[pos, ids])
        p_rest, q_rest = max(0.0, 1.0 - p.sum()), max(0.0, 1.0 - q.sum())
        p_all, q_all = np.append(p, p_rest), np.append(q, q_rest)
        mask = p_all > 0
        out[pos] = max(0.0, float(np.sum(p_all[mask] * (np.log(p_all[mask]) - np.log(np.maximum(q_all[mask],
                                                                                                    1e-300))))))
    return out


def top1_agreement(p_argmax: Sequence[int] | np.ndarray, q_logprobs: np.ndarray) -> float:
    """Share of positions where the candidate's most likely token is the golden's most likely token."""
    q_argmax = np.asarray(q_logprobs).argmax(axis=-1)
    return float(np.mean(np.asarray(p_argmax) == q_argmax)) if len(q_argmax) else 0.0


def _summary(kl: np.ndarray, top1: float, method: str) -> LogitDrift:
    return LogitDrift(True, float(kl.mean()), float(kl.max()), top1, len(kl), method)


def drift_vs_golden(golden: Response, candidate_ids: Sequence[int], candidate_logprobs: np.ndarray) -> LogitDrift:
    """Drift of a teacher-forced candidate from a golden's stored top-k log-probs.

    ``candidate_ids`` is the candidate's tokenization of the golden text (with EOS when the golden stopped
    on its own); if it differs from the golden's own tokens the two models do not share a tokenizer.
    """
    unusable = _unusable_golden(golden)
    if unusable is not None:
        return unusable
    assert golden.logprobs is not None
    golden_ids = [t.token_id for t in golden.logprobs]
    if list(candidate_ids) != golden_ids:
        return LogitDrift.not_applicable(
            f"tokenizers differ: the golden has {len(golden_ids)} tokens, the candidate tokenizes its text into "
            f"{len(candidate_ids)} different ones")
    kl = topk_kl_per_position(golden.logprobs, candidate_logprobs)
    golden_top1 = [max(t.top, key=lambda pair: pair[1])[0] for t in golden.logprobs]
    return _summary(kl, top1_agreement(golden_top1, candidate_logprobs), "topk")


def _unusable_golden(golden: Response) -> LogitDrift | None:
    """Why a golden's stored log-probs cannot stand in for the incumbent, or None when they can."""
    if not golden.logprobs:
        return LogitDrift.not_applicable("the golden has no stored log-probs (record it from a local model)")
    if any(not t.top for t in golden.logprobs):
        return LogitDrift.not_applicable("the golden's log-probs have no top-k alternatives")
    return None


def drift_between(reference_ids: Sequence[int], reference_logprobs: np.ndarray, candidate_ids: Sequence[int],
                  candidate_logprobs: np.ndarray) -> LogitDrift:
    """Drift between two teacher-forced models with full distributions (the incumbent is local too)."""
    if list(reference_ids) != list(candidate_ids) or reference_logprobs.shape != candidate_logprobs.shape:
        return LogitDrift.not_applicable("tokenizers differ: the two models tokenize the golden answer differently")
    kl = kl_per_position(reference_logprobs, candidate_logprobs)
    return _summary(kl, top1_agreement(np.asarray(reference_logprobs).argmax(axis=-1), candidate_logprobs), "full")


def logit_drift(candidate: TeacherForcer, messages: Messages, golden: Response,
                reference: TeacherForcer | None = None) -> LogitDrift:
    """:func:`logit_drift_many` of one item, uncached."""
    return logit_drift_many(candidate, [(messages, golden)], None, reference=reference)[0]


def logit_drift_many(candidate: TeacherForcer, items: Sequence[tuple[Messages, Response]],
                     cache_dir: Path | None = None, *, reference: TeacherForcer | None = None) -> list[LogitDrift]:
    """Teacher-forced drift of ``candidate`` on each item's golden answer, in batched forward passes.

    With ``reference`` (the incumbent, loaded locally) both full distributions are compared; without it, the
    golden's stored top-k log-probs stand in for the incumbent. With ``cache_dir`` the results are kept in a
    SQLite file there, keyed by the models' identities (weights digest included), the prompt, the golden's
    text and a digest of its log-probs: items found there cost no forward pass.
    """
    results: list[LogitDrift | None] = [None] * len(items)
    todo = []
    for i, (_, golden) in enumerate(items):
        unusable = _unusable_golden(golden) if reference is None else None
        if unusable is not None:
            results[i] = unusable
        else:
            todo.append(i)
    cache = SqliteCache(cache_dir / _CACHE_FILE, "logit_drift") if cache_dir is not None and todo else None
    keys: dict[int, bytes] = {}
    if cache is not None:
        ident = [candidate.resolved_model_id(), reference.resolved_model_id() if reference else None]
        keys = {i: _cache_key(ident, *items[i]) for i in todo}
        found = cache.get(list(keys.values()))
        for i in todo:
            if keys[i] in found:
                results[i] = LogitDrift(**json.loads(found[keys[i]]))
        todo = [i for i in todo if results[i] is None]
    if todo:
        scored = _score(candidate, reference, [items[i] for i in todo])
        for i, drift in zip(todo, scored):
            results[i] = drift
        if cache is not None:
            cache.put({keys[i]: json.dumps(asdict(d)).encode() for i, d in zip(todo, scored)})
    if cache is not None:
        cache.close()
    return [r for r in results if r is not None]


def _score(candidate: TeacherForcer, reference: TeacherForcer | None,
           items: Sequence[tuple[Messages, Response]]) -> list[LogitDrift]:
    """Run the forward passes of ``items`` (one batched call per model) and compare."""
    if reference is not None and reference.vocab_fingerprint() != candidate.vocab_fingerprint():
        reason = "tokenizers differ: the two models have different vocabularies"
        return [LogitDrift.not_applicable(reason)] * len(items)
    # A golden cut at the token limit has no EOS to predict.
    forced = [(messages, golden.text, golden.finish_reason != "length") for messages, golden in items]
    cand = candidate.teacher_forced_logprobs_many(forced)
    if reference is not None:
        ref = reference.teacher_forced_logprobs_many(forced)
        return [drift_between(r_ids, r_lp, c_ids, c_lp) for (r_ids, r_lp), (c_ids, c_lp) in zip(ref, cand)]
    return [drift_vs_golden(golden, ids, lp) for (_, golden), (ids, lp) in zip(items, cand)]


def _cache_key(ident: list[str | None], messages: Messages, golden: Response) -> bytes:
    logprobs = None if golden.logprobs is None else [t.to_dict() for t in golden.logprobs]
    logprobs_digest = hashlib.sha256(json.dumps(logprobs).encode()).hexdigest()
    payload = [_CACHE_VERSION, ident, [list(m) for m in messages], golden.text, golden.finish_reason,
               logprobs_digest]
    return hashlib.sha256(json.dumps(payload).encode()).digest()
