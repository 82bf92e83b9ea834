"""Teacher-forced KL / top-1 math on fixed arrays, checked against scipy and hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from pytest_llmswap.drift.logits import (
    LogitDrift,
    drift_between,
    drift_vs_golden,
    kl_per_position,
    logit_drift,
    logit_drift_many,
    top1_agreement,
    topk_kl_per_position,
)
from pytest_llmswap.types import Response, TokenLogprob

P = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.1, 0.7]])
Q = np.array([[0.6, 0.3, 0.05, 0.05], [0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.7]])


def logs(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(probs)


def test_kl_per_position_matches_scipy() -> None:
    got = kl_per_position(logs(P), logs(Q))
    expected = [entropy(p, q) for p, q in zip(P, Q)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[2] == pytest.approx(0.0)
    # By hand, first row: 0.7 ln(0.7/0.6) + 0.2 ln(0.2/0.3) + 0.1 ln(0.1/0.05); the zero-probability token adds 0.
    assert got[0] == pytest.approx(0.7 * math.log(0.7 / 0.6) + 0.2 * math.log(0.2 / 0.3) + 0.1 * math.log(2))


def test_kl_is_not_symmetric_and_infinite_where_candidate_rules_out_a_golden_token() -> None:
    assert kl_per_position(logs(Q[:1]), logs(P[:1]))[0] == np.inf
    assert np.isfinite(kl_per_position(logs(P[:1]), logs(Q[:1]))[0])


def test_topk_kl_coarsens_to_top_k_plus_rest_and_bounds_the_full_kl() -> None:
    # Golden knows tokens 0 and 1 of row 0 (0.7, 0.2), rest 0.1; candidate has 0.6, 0.3, rest 0.1.
    golden = [TokenLogprob(0, "a", math.log(0.7), ((0, math.log(0.7)), (1, math.log(0.2))))]
    got = topk_kl_per_position(golden, logs(Q[:1]))[0]
    assert got == pytest.approx(entropy([0.7, 0.2, 0.1], [0.6, 0.3, 0.1]))
    assert got <= kl_per_position(logs(P[:1]), logs(Q[:1]))[0]


def test_top1_agreement() -> None:
    assert top1_agreement([0, 0, 3], logs(Q)) == pytest.approx(2 / 3)
    assert top1_agreement([0, 3, 3], logs(Q)) == 1.0


def golden_from(probs: np.ndarray, ids: list[int], k: int = 2, finish: str = "stop") -> Response:
    entries = []
    for row, tok_id in zip(probs, ids):
        top = np.argsort(-row)[:k]
        entries.append(TokenLogprob(tok_id, str(tok_id), math.log(row[tok_id]),
                                    tuple((int(i), math.log(row[i])) for i in top)))
    return Response(text="x", logprobs=tuple(entries), finish_reason=finish)


def test_drift_vs_golden_summarises_topk_kl() -> None:
    golden = golden_from(P, [0, 1, 3])
    drift = drift_vs_golden(golden, [0, 1, 3], logs(Q))
    per_pos = topk_kl_per_position(golden.logprobs, logs(Q))
    assert drift.applicable and drift.method == "topk" and drift.n_tokens == 3
    assert drift.mean_kl == pytest.approx(per_pos.mean()) and drift.max_kl == pytest.approx(per_pos.max())
    # Golden top-1: 0, then a tie among equals (argsort picks 0), then 3; candidate argmax: 0, 3, 3.
    assert drift.top1_agreement == pytest.approx(2 / 3)


def test_drift_vs_golden_not_applicable_cases() -> None:
    assert not drift_vs_golden(Response(text="x"), [1], logs(Q[:1])).applicable
    golden = golden_from(P, [0, 1, 3])
    mismatch = drift_vs_golden(golden, [0, 1], logs(Q[:2]))
    assert not mismatch.applicable and "tokenizers differ" in mismatch.reason
    no_top = Response(text="x", logprobs=(TokenLogprob(0, "a", -0.1),))
    assert "top-k" in drift_vs_golden(no_top, [0], logs(Q[:1])).reason


def test_drift_between_full_distributions() -> None:
    drift = drift_between([0, 1, 3], logs(P), [0, 1, 3], logs(Q))
    expected = [entropy(p, q) for p, q in zip(P, Q)]
    assert drift.method == "full"
    assert drift.mean_kl == pytest.approx(np.mean(expected)) and drift.max_kl == pytest.approx(max(expected))
    assert drift.top1_agreement == pytest.approx(2 / 3)
    assert drift_between([0, 1, 3], logs(P), [0, 1, 3], logs(P)).mean_kl == pytest.approx(0.0)
    assert not drift_between([0, 1, 3], logs(P), [0, 2], logs(Q[:2])).applicable


class FakeModel:
    """Returns fixed arrays, as HFBackend.teacher_forced_logprobs_many would."""

    def __init__(self, probs: np.ndarray, vocab: str = "v1", ident: str = "hf:fake@0") -> None:
        self.probs, self.vocab, self.ident, self.calls = probs, vocab, ident, []

    def teacher_forced_logprobs_many(self, items):
        self.calls.extend((tuple(messages), text, add_eos) for messages, text, add_eos in items)
        return [([0, 1, 3], logs(self.probs)) for _ in items]

    def vocab_fingerprint(self) -> str:
        return self.vocab

    def resolved_model_id(self) -> str:
        return self.ident


def test_logit_drift_dispatches_to_golden_or_reference() -> None:
    golden = golden_from(P, [0, 1, 3], finish="length")
    cand = FakeModel(Q)
    vs_golden = logit_drift(cand, [("user", "hi")], golden)
    assert vs_golden.method == "topk"
    assert cand.calls == [((("user", "hi"),), "x", False)]  # a truncated golden gets no EOS appended
    vs_ref = logit_drift(cand, [("user", "hi")], golden, reference=FakeModel(P))
    assert vs_ref.method == "full" and vs_ref.mean_kl == pytest.approx(np.mean([entropy(p, q) for p, q in zip(P, Q)]))
    other = logit_drift(cand, [("user", "hi")], golden, reference=FakeModel(P, vocab="v2"))
    assert other == LogitDrift.not_applicable("tokenizers differ: the two models have different vocabularies")


def test_logit_drift_many_scores_all_items_in_one_call_and_skips_unusable_goldens() -> None:
    golden = golden_from(P, [0, 1, 3])
    cand = FakeModel(Q)
    items = [([("user", "a")], golden), ([("user", "b")], Response(text="no log-probs")), ([("user", "c")], golden)]
    drifts = logit_drift_many(cand, items)
    assert [c[0] for c in cand.calls] == [(("user", "a"),), (("user", "c"),)]  # no pass for the unusable golden
    assert drifts[0] == drifts[2] == logit_drift(FakeModel(Q), [("user", "a")], golden)
    assert not drifts[1].applicable and "no stored log-probs" in drifts[1].reason


def test_logit_drift_many_cache_skips_forward_passes_and_is_keyed_by_what_decides_the_result(tmp_path) -> None:
    golden = golden_from(P, [0, 1, 3])
    items = [([("user", "a")], golden), ([("user", "b")], golden)]
    first = logit_drift_many(FakeModel(Q), items, tmp_path)
    again = FakeModel(Q)
    assert logit_drift_many(again, items, tmp_path) == first and again.calls == []
    # Anything that decides the drift misses the cache: the candidate's weights, the prompt, the golden's
    # text, its log-probs, the reference model.
    other_golden = golden_from(P, [0, 1, 3], k=3)
    variants = [(FakeModel(Q, ident="hf:fake@1"), items, None),
                (FakeModel(Q), [([("user", "z")], golden)], None),
                (FakeModel(Q), [([("user", "a")], Response(text="y", logprobs=golden.logprobs))], None),
                (FakeModel(Q), [([("user", "a")], other_golden)], None),
                (FakeModel(Q), items[:1], FakeModel(P))]
    for model, variant_items, reference in variants:
        logit_drift_many(model, variant_items, tmp_path, reference=reference)
        assert len(model.calls) == len(variant_items)
    assert (tmp_path / "logit_drift.sqlite3").is_file()


def test_logit_drift_many_cache_keeps_not_applicable_and_infinite_results(tmp_path) -> None:
    golden = golden_from(P, [0, 1, 3])
    mismatch = FakeModel(Q)
    mismatch.teacher_forced_logprobs_many = lambda items: [([0, 2], logs(Q[:2])) for _ in items]
    first = logit_drift_many(mismatch, [([("user", "a")], golden)], tmp_path)
    assert not first[0].applicable
    assert logit_drift_many(FakeModel(Q), [([("user", "a")], golden)], tmp_path) == first
    ruled_out = Q.copy()
    ruled_out[0] = [0.0, 0.5, 0.5, 0.0]  # the candidate gives the golden's top token zero probability
    full = logit_drift_many(FakeModel(ruled_out), [([("user", "i")], golden)], tmp_path, reference=FakeModel(P))
    assert full[0].max_kl == np.inf
    assert logit_drift_many(FakeModel(ruled_out), [([("user", "i")], golden)], tmp_path,
                            reference=FakeModel(P)) == full
