"""The transformers backend on the committed example models: options, batching, usage, log-probs, errors."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_fixtures import STUDENT, TEACHER, hf_spec, load_cases, requests_for, triage_messages  # noqa: E402

from pytest_llmswap.drift.logits import logit_drift, logit_drift_many  # noqa: E402
from pytest_llmswap.models.hf import HFBackend, check_hf_params, validate_hf_options  # noqa: E402
from pytest_llmswap.types import ModelCallError, Response  # noqa: E402

CASES = load_cases()
ORDINARY = [c for c in CASES if not c["id"].startswith("ambiguous")]


@pytest.fixture(scope="module")
def teacher() -> HFBackend:
    backend = HFBackend(hf_spec())
    backend.load()
    return backend


@pytest.fixture(scope="module")
def teacher_answers(teacher: HFBackend) -> list[Response]:
    answers = teacher.complete(requests_for(teacher.spec, CASES))
    assert all(isinstance(a, Response) for a in answers)
    return answers


# -- options ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    {}, {"dtype": "bfloat16", "quant": "int8"}, {"quant": "int8-dynamic", "device": "auto"},
    {"quant": "bnb4", "device": "cuda"}, {"batch_size": "4", "max_new_tokens": "32", "top_k_logprobs": "0"},
])
def test_valid_options(options: dict[str, str]) -> None:
    validate_hf_options(options)


@pytest.mark.parametrize(("options", "message"), [
    ({"dtype": "float8"}, "hf option dtype='float8' is not one of float32, bfloat16, float16"),
    ({"quant": "int4"}, "hf option quant='int4' is not one of int8, int8-dynamic, bnb8, bnb4"),
    ({"device": "tpu"}, "hf option device='tpu' is not one of cpu, cuda, auto"),
    ({"batch_size": "0"}, "hf option batch_size='0' must be an integer >= 1"),
    ({"max_new_tokens": "many"}, "hf option max_new_tokens='many' must be an integer >= 1"),
    ({"temprature": "0"}, "unknown hf option 'temprature'; allowed options: dtype, quant, device, batch_size"),
    ({"quant": "bnb8", "device": "cpu"}, "hf option quant=bnb8 needs device=cuda or auto"),
])
def test_invalid_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        validate_hf_options(options)
    with pytest.raises(ValueError):
        HFBackend(hf_spec(**options))


def test_import_does_not_load_torch() -> None:
    code = ("import sys, pytest_llmswap.models.hf; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- generation ------------------------------------------------------------------------------------------------
def test_greedy_answers_are_json_and_correct(teacher_answers: list[Response]) -> None:
    correct = 0
    for case, answer in zip(CASES, teacher_answers):
        got = answer.json
        assert set(got) == {"category", "priority", "reference"}
        correct += got["category"] in case["categories"] and got["priority"] == case["priority"] \
            and got["reference"] == case["reference"]
        assert answer.finish_reason == "stop" and not answer.truncated
    assert correct == len(CASES)


def test_batched_equals_one_at_a_time(teacher_answers: list[Response]) -> None:
    single = HFBackend(hf_spec(batch_size="1"))
    one_by_one = single.complete(requests_for(single.spec, CASES[:12]))
    assert [a.text for a in one_by_one] == [a.text for a in teacher_answers[:12]]
    assert single.stats["batches"] == 12
    for a, b in zip(one_by_one, teacher_answers):
        np.testing.assert_allclose([t.logprob for t in a.logprobs], [t.logprob for t in b.logprobs], atol=1e-4)


def test_usage_counts_real_tokens(teacher: HFBackend, teacher_answers: list[Response]) -> None:
    tok = teacher.tokenizer
    for case, answer in zip(CASES[:5], teacher_answers):
        prompt, add_special = teacher.prompt_text(triage_messages(case))
        assert answer.usage.input_tokens == len(tok(prompt, add_special_tokens=add_special)["input_ids"])
        # The answer's own tokens plus the EOS that ended it.
        assert answer.usage.output_tokens == len(tok(answer.text, add_special_tokens=False)["input_ids"]) + 1
        assert answer.latency_s is not None and answer.latency_s > 0
    assert teacher.last_throughput_tok_s and teacher.last_throughput_tok_s > 0


def test_max_new_tokens_truncates(teacher: HFBackend) -> None:
    short = HFBackend(hf_spec(max_new_tokens="5"))
    answer = short.complete(requests_for(short.spec, CASES[:2]))[0]
    assert answer.finish_reason == "length" and answer.truncated
    assert answer.usage.output_tokens == 5 and answer.text == '{"category":'
    # A request's max_tokens overrides the spec's default.
    overridden = teacher.complete(requests_for(teacher.spec, CASES[:1], max_tokens=3))[0]
    assert overridden.truncated and overridden.usage.output_tokens == 3


def test_logprobs_present_and_consistent(teacher_answers: list[Response]) -> None:
    answer = teacher_answers[0]
    assert answer.logprobs is not None and len(answer.logprobs) == answer.usage.output_tokens
    assert answer.logprobs[-1].token == "</s>"
    for entry in answer.logprobs:
        assert entry.logprob <= 0 and len(entry.top) == 5
        assert [lp for _, lp in entry.top] == sorted((lp for _, lp in entry.top), reverse=True)
        assert entry.top[0] == (entry.token_id, pytest.approx(entry.logprob))  # greedy picks the top token
    assert "".join(t.token for t in answer.logprobs[:-1]) == answer.text
    no_top = HFBackend(hf_spec(top_k_logprobs="0")).complete(requests_for(hf_spec(), CASES[:1]))[0]
    assert no_top.logprobs and all(t.top == () for t in no_top.logprobs)


def test_sampling_is_seeded_per_sample(teacher: HFBackend) -> None:
    cases = [c for c in CASES if c["id"].startswith("ambiguous")][:8]
    first = [a.text for a in teacher.complete(requests_for(teacher.spec, cases, sample=0, temperature=1.5))]
    again = [a.text for a in teacher.complete(requests_for(teacher.spec, cases, sample=0, temperature=1.5))]
    other = [a.text for a in teacher.complete(requests_for(teacher.spec, cases, sample=1, temperature=1.5))]
    assert first == again
    assert first != other
    # A sample does not depend on which other requests shared its batch.
    alone = teacher.complete(requests_for(teacher.spec, cases[3:4], sample=0, temperature=1.5))[0].text
    assert alone == first[3]


def test_resolved_model_id_names_the_checkpoint(teacher: HFBackend) -> None:
    ident = teacher.resolved_model_id()
    assert ident.startswith(f"hf:{TEACHER.name}@") and len(ident.split("@")[1]) == 12  # no machine path
    assert HFBackend(hf_spec(STUDENT)).resolved_model_id().split("@")[1] != ident.split("@")[1]
    assert HFBackend(hf_spec(dtype="bfloat16")).resolved_model_id() == ident + "?dtype=bfloat16"


def test_one_checkpoint_spelt_two_ways_is_one_model() -> None:
    """dtype=float32 on a float32 checkpoint, or device=cpu, restate the defaults: same identity, same model id."""
    from pytest_llmswap.models.spec import parse_spec

    plain = parse_spec(f"hf:{TEACHER}", {})
    for spelling in ("dtype=float32", "device=cpu", "device=cpu&dtype=float32"):
        other = parse_spec(f"hf:{TEACHER}?{spelling}", {})
        assert other.identity == plain.identity, spelling
        assert HFBackend(other).resolved_model_id() == HFBackend(plain).resolved_model_id()
    assert parse_spec(f"hf:{TEACHER}?dtype=bfloat16", {}).identity != plain.identity
    assert parse_spec(f"hf:{TEACHER}?quant=int8", {}).identity != plain.identity


def test_model_loaded_once_per_variant(teacher: HFBackend) -> None:
    again = HFBackend(hf_spec(batch_size="2"))
    again.load()
    assert again._loaded is teacher._loaded


# -- dtype and quantization variants ---------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"dtype": "bfloat16"}, {"dtype": "float16"}, {"quant": "int8"},
                                     {"quant": "int8-dynamic"}])
def test_variants_run_on_cpu(options: dict[str, str], teacher_answers: list[Response]) -> None:
    backend = HFBackend(hf_spec(**options))
    answers = backend.complete(requests_for(backend.spec, ORDINARY[:16]))
    model = backend._loaded.model
    if "dtype" in options:
        assert str(model.dtype) == f"torch.{options['dtype']}"
    else:
        # torchao swaps the linear weights for its quantized tensor subclasses at load time.
        assert type(model.model.layers[0].mlp.up_proj.weight).__name__ not in ("Parameter", "Tensor")
    # Ordinary tickets are far from a decision boundary: every variant answers them as the teacher does.
    by_id = {c["id"]: a.text for c, a in zip(CASES, teacher_answers)}
    assert [a.text for a in answers] == [by_id[c["id"]] for c in ORDINARY[:16]]


# -- errors ----------------------------------------------------------------------------------------------------
def one_error(backend: HFBackend) -> str:
    result = backend.complete(requests_for(backend.spec, CASES[:1]))[0]
    assert isinstance(result, ModelCallError)
    message = str(result)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path) -> None:
    assert one_error(HFBackend(hf_spec(tmp_path / "nope"))) == f"hf model folder does not exist: {tmp_path / 'nope'}"


def test_folder_without_tokenizer(tmp_path) -> None:
    for name in ("config.json", "model.safetensors"):
        shutil.copy(TEACHER / name, tmp_path / name)
    assert one_error(HFBackend(hf_spec(tmp_path))).startswith("hf model folder has no tokenizer")


def test_folder_that_is_not_a_checkpoint(tmp_path) -> None:
    assert "no config.json" in one_error(HFBackend(hf_spec(tmp_path)))


def test_hub_id_offline_fails_fast() -> None:
    start = time.perf_counter()
    message = one_error(HFBackend(hf_spec("nobody-llmswap/not-a-model")))
    assert time.perf_counter() - start < 20
    assert message.startswith("hf model 'nobody-llmswap/not-a-model' is not a local folder and could not be loaded")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-CUDA message")
@pytest.mark.parametrize(("options", "message"), [
    ({"quant": "bnb8"}, "quant=bnb8 needs a CUDA GPU (bitsandbytes); this machine has none"),
    ({"quant": "bnb4", "device": "auto"}, "quant=bnb4 needs a CUDA GPU"),
    ({"device": "cuda"}, "device=cuda requested but torch sees no CUDA device"),
])
def test_cuda_only_options_without_cuda(options: dict[str, str], message: str) -> None:
    assert message in one_error(HFBackend(hf_spec(**options)))


# -- teacher forcing -------------------------------------------------------------------------------------------
def test_teacher_forced_logprobs_match_generation(teacher: HFBackend, teacher_answers: list[Response]) -> None:
    answer = teacher_answers[0]
    ids, rows = teacher.teacher_forced_logprobs(triage_messages(CASES[0]), answer.text)
    assert ids == [t.token_id for t in answer.logprobs]
    assert rows.shape == (len(ids), len(teacher.tokenizer))
    np.testing.assert_allclose(rows[np.arange(len(ids)), ids], [t.logprob for t in answer.logprobs], atol=1e-4)
    assert list(rows.argmax(axis=1)) == ids


def test_logit_drift_teacher_vs_student(teacher: HFBackend, teacher_answers: list[Response]) -> None:
    student = HFBackend(hf_spec(STUDENT))
    messages, golden = triage_messages(CASES[0]), teacher_answers[0]
    vs_golden = logit_drift(student, messages, golden)
    vs_teacher = logit_drift(student, messages, golden, reference=teacher)
    assert vs_golden.applicable and vs_teacher.applicable
    assert vs_teacher.mean_kl > 0 and vs_teacher.max_kl >= vs_teacher.mean_kl
    assert vs_golden.mean_kl <= vs_teacher.mean_kl + 1e-6  # top-k coarsening only loses information
    assert logit_drift(teacher, messages, golden, reference=teacher).mean_kl == pytest.approx(0.0, abs=1e-6)
    assert logit_drift(teacher, messages, golden).top1_agreement == 1.0
    assert json.loads(golden.text)  # the answer scored is the real JSON answer


def forced_items(answers: list[Response]) -> list[tuple[tuple[tuple[str, str], ...], str, bool]]:
    """Prompts and answers of many lengths, with and without EOS: padding differs in every batch."""
    return [(triage_messages(c), a.text[: 5 + 7 * i], i % 3 != 0) for i, (c, a) in enumerate(zip(CASES, answers))]


def test_batched_teacher_forcing_equals_one_at_a_time(teacher: HFBackend, teacher_answers: list[Response]) -> None:
    items = forced_items(teacher_answers)
    one_at_a_time = HFBackend(hf_spec(batch_size="1"))
    batched = teacher.teacher_forced_logprobs_many(items)
    for item, (ids, rows) in zip(items, batched):
        single_ids, single_rows = one_at_a_time.teacher_forced_logprobs(*item)
        assert ids == single_ids
        np.testing.assert_allclose(rows, single_rows, atol=1e-5, rtol=0)


def test_logit_drift_many_equals_per_item_and_its_cache_loads_no_model(teacher_answers: list[Response],
                                                                       tmp_path) -> None:
    items = [(triage_messages(c), a) for c, a in zip(CASES, teacher_answers)]
    single = HFBackend(hf_spec(STUDENT, batch_size="1"))
    expected = [logit_drift(single, m, g) for m, g in items]
    got = logit_drift_many(HFBackend(hf_spec(STUDENT)), items, tmp_path)
    assert all(d.applicable for d in got)
    for g, e in zip(got, expected):
        assert (g.mean_kl, g.max_kl) == (pytest.approx(e.mean_kl, abs=1e-5), pytest.approx(e.max_kl, abs=1e-5))
        assert (g.top1_agreement, g.n_tokens) == (e.top1_agreement, e.n_tokens)
    rerun = HFBackend(hf_spec(STUDENT, batch_size="4"))  # batch size is not part of the model's identity
    assert logit_drift_many(rerun, items, tmp_path) == got
    assert rerun._loaded is None  # no forward pass, not even a model load


# -- sampling parameters ---------------------------------------------------------------------------------------
def with_params(**params: object):
    return dataclasses.replace(hf_spec(), params=tuple(sorted(params.items())))


def k_samples(spec, case: dict, k: int = 5, **request_params: object) -> list[str]:
    backend = HFBackend(spec)
    return [a.text for a in backend.complete([r for s in range(k)
                                              for r in requests_for(spec, [case], sample=s, **request_params)])]


AMBIGUOUS = [c for c in CASES if c["id"].startswith("ambiguous")][0]


def test_model_level_temperature_is_used_and_samples_are_reproducible() -> None:
    hot = k_samples(with_params(temperature=1.5), AMBIGUOUS)
    assert len(set(hot)) > 1
    assert k_samples(with_params(temperature=1.5), AMBIGUOUS) == hot
    assert len(set(k_samples(with_params(temperature=0), AMBIGUOUS))) == 1
    # The contract's params override the model's: temperature 0 on the contract is greedy.
    assert set(k_samples(with_params(temperature=1.5), AMBIGUOUS, temperature=0)) == set(
        k_samples(hf_spec(), AMBIGUOUS, k=1))


def test_seed_moves_every_sample_reproducibly() -> None:
    seeded = k_samples(with_params(temperature=1.5, seed=7), AMBIGUOUS)
    assert k_samples(with_params(temperature=1.5, seed=7), AMBIGUOUS) == seeded
    assert k_samples(with_params(temperature=1.5, seed=8), AMBIGUOUS) != seeded


def test_model_level_max_tokens_is_used() -> None:
    answer = HFBackend(with_params(max_tokens=3)).complete(requests_for(with_params(max_tokens=3), CASES[:1]))[0]
    assert answer.usage.output_tokens == 3 and answer.truncated


@pytest.mark.parametrize(("params", "message"), [
    ({"frequency_penalty": 0.5}, "hf models do not support the parameter 'frequency_penalty': local generation uses "
                                 "only temperature, top_p, seed, max_tokens, max_new_tokens"),
    ({"temperature": -1}, "hf parameter temperature=-1 must be a number >= 0"),
    ({"temperature": "hot"}, "hf parameter temperature='hot' must be a number >= 0"),
    ({"top_p": 0}, "hf parameter top_p=0 must be a number in (0, 1]"),
    ({"seed": 1.5}, "hf parameter seed=1.5 must be an integer"),
    ({"max_tokens": 0}, "hf parameter max_tokens=0 must be an integer >= 1"),
])
def test_unsupported_or_bad_sampling_params_are_refused_in_one_line(params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_hf_params(params)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_supported_sampling_params_pass() -> None:
    check_hf_params({"temperature": 0.8, "top_p": 0.9, "seed": 3, "max_tokens": 64, "max_new_tokens": None})


# -- quiet loading ---------------------------------------------------------------------------------------------
# One process loads the teacher quietly, writes a mark, then loads it again verbosely (its in-process cache
# emptied): the quiet load is still the process's first import of torch, transformers and torchao, and one
# subprocess pays for those imports instead of two.
MARK = "--- verbose from here ---"
LOAD_TEACHER = ("import sys; from pytest_llmswap.run import progress; from pytest_llmswap.models import hf; "
                "from hf_fixtures import hf_spec; hf.HFBackend(hf_spec(quant='int8')).load(); "
                f"sys.stderr.write({MARK!r}); sys.stderr.flush(); progress.VERBOSE = True; hf._CACHE.clear(); "
                "hf.HFBackend(hf_spec(quant='int8')).load()")


@pytest.mark.slow(seconds=6)
def test_loading_prints_no_progress_bars_or_library_warnings_unless_verbose() -> None:
    stderr = subprocess.run([sys.executable, "-c", LOAD_TEACHER], capture_output=True, text=True, check=True,
                            cwd=TEACHER.parent.parent.parent / "tests").stderr
    quiet, verbose = stderr.split(MARK)
    assert quiet == ""
    assert "Loading weights" in verbose
