"""Teacher-forced logit drift: KL divergence and top-1 agreement on the golden answer's tokens.

Dutta et al. 2024, "Accuracy is Not All You Need": compressed models that keep benchmark accuracy still flip
answers; the KL divergence between the baseline's and the compressed model's next-token distributions, with both
fed the same tokens, measures that drift directly. Here both are fed the prompt plus the golden answer.

The math here is pure numpy on arrays; running a model (``HFBackend.teacher_forced_logprobs``) is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..types import Response, TokenLogprob


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

    def teacher_forced_logprobs(self, messages: Sequence[tuple[str, str]], answer_text: str,
                                add_eos: bool = True) -> tuple[list[int], np.ndarray]: ...

    def vocab_fingerprint(self) -> str: ...


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
    if not golden.logprobs:
        return LogitDrift.not_applicable("the golden has no stored log-probs (record it from a local model)")
    if any(not t.top for t in golden.logprobs):
        return LogitDrift.not_applicable("the golden's log-probs have no top-k alternatives")
    golden_ids = [t.token_id for t in golden.logprobs]
    if list(candidate_ids) != golden_ids:
        return LogitDrift.not_applicable(
            f"tokenizers differ: the golden has {len(golden_ids)} tokens, the candidate tokenizes its text into "
            f"{len(candidate_ids)} different ones")
    kl = topk_kl_per_position(golden.logprobs, candidate_logprobs)
    golden_top1 = [max(t.top, key=lambda pair: pair[1])[0] for t in golden.logprobs]
    return _summary(kl, top1_agreement(golden_top1, candidate_logprobs), "topk")


def drift_between(reference_ids: Sequence[int], reference_logprobs: np.ndarray, candidate_ids: Sequence[int],
                  candidate_logprobs: np.ndarray) -> LogitDrift:
    """Drift between two teacher-forced models with full distributions (the incumbent is local too)."""
    if list(reference_ids) != list(candidate_ids) or reference_logprobs.shape != candidate_logprobs.shape:
        return LogitDrift.not_applicable("tokenizers differ: the two models tokenize the golden answer differently")
    kl = kl_per_position(reference_logprobs, candidate_logprobs)
    return _summary(kl, top1_agreement(np.asarray(reference_logprobs).argmax(axis=-1), candidate_logprobs), "full")


def logit_drift(candidate: TeacherForcer, messages: Sequence[tuple[str, str]], golden: Response,
                reference: TeacherForcer | None = None) -> LogitDrift:
    """Teacher-forced drift of ``candidate`` on ``golden``'s answer.

    With ``reference`` (the incumbent, loaded locally) both full distributions are compared; without it, the
    golden's stored top-k log-probs stand in for the incumbent.
    """
    add_eos = golden.finish_reason != "length"
    if reference is not None:
        if reference.vocab_fingerprint() != candidate.vocab_fingerprint():
            return LogitDrift.not_applicable("tokenizers differ: the two models have different vocabularies")
        ref_ids, ref_lp = reference.teacher_forced_logprobs(messages, golden.text, add_eos)
        cand_ids, cand_lp = candidate.teacher_forced_logprobs(messages, golden.text, add_eos)
        return drift_between(ref_ids, ref_lp, cand_ids, cand_lp)
    cand_ids, cand_lp = candidate.teacher_forced_logprobs(messages, golden.text, add_eos)
    return drift_vs_golden(golden, cand_ids, cand_lp)
