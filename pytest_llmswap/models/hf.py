"""The transformers backend: local, quantized and distilled causal LMs (model spec ``hf:PATH_OR_ID?key=value``).

torch and transformers are imported inside functions only: importing this module must stay cheap, because the
plugin imports it whenever a session names an ``hf:`` model, and a plain replay must not pay for torch.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..run.progress import quiet_libraries
from ..types import ModelCallError, ModelSpec, Request, Response, TokenLogprob, Usage
from .base import AnswerCallback, reject_empty
from .hf_sampling import RowSampler, check_hf_params, decoding
from .hf_spec import check_folder, check_spec, hub_reachable, is_local, validate_hf_options
from .weights import weights_digest

__all__ = ["HFBackend", "check_hf_params", "check_spec", "validate_hf_options"]

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_NEW_TOKENS = 128
DEFAULT_TOP_K_LOGPROBS = 5


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: tuple[int, ...]
    pad_id: int
    source: str  # absolute folder, or the hub id


_CACHE: dict[tuple[str, str, str, str], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _load(target: str, dtype: str, quant: str, device: str) -> _Loaded:
    """Load a model variant, keeping library progress bars and warnings out of the test output."""
    with quiet_libraries():
        return _load_loudly(target, dtype, quant, device)


def _load_loudly(target: str, dtype: str, quant: str, device: str) -> _Loaded:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_local(target):
        folder = Path(target).expanduser().resolve()
        check_folder(folder)
        source, local_only = str(folder), True
    else:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
        source, local_only = target, offline
        # huggingface_hub retries with long timeouts when the network is down; fail in seconds instead.
        if not local_only and not hub_reachable():
            local_only = True

    if device == "cuda" and not torch.cuda.is_available():
        raise ModelCallError(f"hf model {target}: device=cuda requested but torch sees no CUDA device")
    if quant in ("bnb8", "bnb4") and not torch.cuda.is_available():
        raise ModelCallError(f"hf model {target}: quant={quant} needs a CUDA GPU (bitsandbytes); this machine has none")

    kwargs: dict[str, Any] = {"local_files_only": local_only, "dtype": getattr(torch, dtype) if dtype else "auto"}
    if quant in ("int8", "int8-dynamic"):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        config = Int8WeightOnlyConfig() if quant == "int8" else Int8DynamicActivationInt8WeightConfig()
        kwargs["quantization_config"] = TorchAoConfig(config)
    elif quant in ("bnb8", "bnb4"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=quant == "bnb8", load_in_4bit=quant == "bnb4")
    if device == "auto":
        kwargs["device_map"] = "auto"
    elif device == "cuda" or quant in ("bnb8", "bnb4"):
        kwargs["device_map"] = "cuda"

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except torch.OutOfMemoryError as exc:
        raise ModelCallError(f"hf model {target} does not fit on {device or 'cpu'}: {str(exc).splitlines()[0]}") \
            from None
    except (OSError, ValueError, ImportError) as exc:
        where = "the local Hugging Face cache (offline, or the hub is unreachable)" if local_only else "the hub"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not is_local(target):
            raise ModelCallError(f"hf model {target!r} is not a local folder and could not be loaded from {where}: "
                                 f"{first}") from None
        raise ModelCallError(f"hf model {target} could not be loaded: {first}") from None
    model.eval()
    if "device_map" not in kwargs:
        model.to("cpu")
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge of every row

    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else ((eos,) if eos is not None else ())
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
    return _Loaded(model, tokenizer, model.device, eos_ids, pad_id, source)


class HFBackend:
    """Backend for ``hf:`` specs: loads the model once per (target, dtype, quant, device) and generates in
    left-padded batches. Greedy unless the model's or the request's params ask for ``temperature > 0``
    (see :mod:`.hf_sampling`)."""

    def __init__(self, spec: ModelSpec) -> None:
        opts = spec.option_dict
        validate_hf_options(opts)
        self.spec = spec
        self.dtype = opts.get("dtype", "")
        self.quant = opts.get("quant", "")
        self.device = opts.get("device", "cpu")
        self.batch_size = int(opts.get("batch_size", DEFAULT_BATCH_SIZE))
        self.max_new_tokens = int(opts.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
        self.top_k_logprobs = int(opts.get("top_k_logprobs", DEFAULT_TOP_K_LOGPROBS))
        self.last_throughput_tok_s: float | None = None
        self.stats: dict[str, float] = {"batches": 0, "output_tokens": 0, "generate_s": 0.0}
        self._loaded: _Loaded | None = None

    # -- loading ---------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load model and tokenizer (once per process and variant); raises :class:`ModelCallError` with one line."""
        if self._loaded is not None:
            return
        key = (self.spec.target, self.dtype, self.quant, self.device)
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = _load(*key)
            self._loaded = _CACHE[key]

    def resolved_model_id(self) -> str:
        """``hf:<folder name>@<weights sha>`` (or ``hf:<hub id>@<commit>``), plus the dtype/quant chosen.

        The folder's name, not its path: the weights' digest identifies the checkpoint, and goldens must not
        change with where a checkout lives."""
        if is_local(self.spec.target):
            # No load needed for a folder: a cached re-run can name the checkpoint without loading it.
            folder = Path(self.spec.target).expanduser().resolve()
            check_folder(folder)
            ident = f"hf:{folder.name}@{weights_digest(folder)}"
        else:
            self.load()
            assert self._loaded is not None
            source = self._loaded.source
            commit = getattr(self._loaded.model.config, "_commit_hash", None)
            ident = f"hf:{source}@{commit[:12]}" if commit else f"hf:{source}"
        variant = "&".join(f"{k}={v}" for k, v in (("dtype", self.dtype), ("quant", self.quant)) if v)
        return f"{ident}?{variant}" if variant else ident

    @property
    def tokenizer(self) -> Any:
        self.load()
        assert self._loaded is not None
        return self._loaded.tokenizer

    def vocab_fingerprint(self) -> str:
        """Hash of the tokenizer's vocabulary: equal fingerprints mean token ids can be compared directly."""
        vocab = sorted(self.tokenizer.get_vocab().items())
        return hashlib.sha256(repr(vocab).encode()).hexdigest()[:16]

    def prompt_text(self, messages: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> tuple[str, bool]:
        """The text the model continues and whether the tokenizer should add its own special tokens."""
        tok = self.tokenizer
        if tok.chat_template:
            chat = [{"role": r, "content": c} for r, c in messages]
            # The chat template writes BOS itself, so tokenizing must not add another.
            return tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False), False
        return "\n\n".join(c for _, c in messages), True

    # -- generation ------------------------------------------------------------------------------------------
    def complete(self, requests: list[Request],
                 on_answer: AnswerCallback | None = None) -> list[Response | ModelCallError]:
        """Answer every request, passing each batch's answers to ``on_answer`` as it finishes; a load failure,
        an out-of-memory batch or an empty answer becomes a per-request ModelCallError."""
        try:
            self.load()
        except ModelCallError as exc:
            return [exc for _ in requests]
        results: list[Response | ModelCallError | None] = [None] * len(requests)
        prompts = [self.prompt_text(r.messages) for r in requests]
        lengths = [len(self.tokenizer(p, add_special_tokens=add)["input_ids"]) for p, add in prompts]
        groups: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(self._max_tokens(req), []).append(i)
        total_tokens, total_s = 0, 0.0
        for max_new, members in groups.items():
            # Similar lengths share a batch so little compute goes to padding.
            members.sort(key=lambda i: lengths[i])
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                t0 = time.perf_counter()
                try:
                    answers = self._generate([requests[i] for i in batch], [prompts[i] for i in batch], max_new)
                except ModelCallError as exc:
                    answers = [exc] * len(batch)
                wall = time.perf_counter() - t0
                for i, answer in zip(batch, answers):
                    results[i] = reject_empty(self.spec.name, requests[i], answer)
                    if on_answer is not None:
                        on_answer(i, results[i])
                total_tokens += sum(a.usage.output_tokens for a in answers if isinstance(a, Response))
                total_s += wall
        self.stats["output_tokens"] += total_tokens
        self.stats["generate_s"] += total_s
        self.last_throughput_tok_s = total_tokens / total_s if total_s > 0 else None
        return [r for r in results if r is not None]

    def _max_tokens(self, request: Request) -> int:
        return decoding(request).max_new_tokens or self.max_new_tokens

    def _generate(self, requests: list[Request], prompts: list[tuple[str, bool]], max_new: int) -> list[Response]:
        import torch
        from transformers import LogitsProcessorList

        assert self._loaded is not None
        loaded = self._loaded
        tok, model = loaded.tokenizer, loaded.model
        add_special = prompts[0][1]
        enc = tok([p for p, _ in prompts], add_special_tokens=add_special, padding=True, return_tensors="pt")
        enc = {k: v.to(loaded.device) for k, v in enc.items()}
        rows = [decoding(r) for r in requests]
        kwargs: dict[str, Any] = {}
        if any(row.temperature > 0 for row in rows):
            kwargs["logits_processor"] = LogitsProcessorList([RowSampler(rows)])
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                out = model.generate(
                    **enc, max_new_tokens=max_new, do_sample=False, num_beams=1, return_dict_in_generate=True,
                    output_logits=True, pad_token_id=loaded.pad_id, eos_token_id=list(loaded.eos_ids) or None,
                    **kwargs,
                )
        except torch.OutOfMemoryError as exc:
            raise ModelCallError(f"hf model {self.spec.target} ran out of memory on {loaded.device} generating a "
                                 f"batch of {len(requests)}: {str(exc).splitlines()[0]}") from None
        wall = time.perf_counter() - t0
        self.stats["batches"] += 1
        # Raw logits, not the processed scores: the log-probs describe the model, whatever picked the token.
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(dim=-1)  # (batch, steps, vocab)
        new_tokens = out.sequences[:, enc["input_ids"].shape[1] :]
        input_counts = enc["attention_mask"].sum(dim=1).tolist()
        responses = []
        for row, req in enumerate(requests):
            ids = new_tokens[row].tolist()
            end = next((j for j, t in enumerate(ids) if t in loaded.eos_ids), None)
            finish = "stop" if end is not None else "length"
            produced = ids[: end + 1] if end is not None else ids
            responses.append(Response(
                text=tok.decode(produced, skip_special_tokens=True),
                model=self.spec.name,
                usage=Usage(input_tokens=int(input_counts[row]), output_tokens=len(produced)),
                # One generate call serves the whole batch: per-request latency is its share of the batch time.
                latency_s=wall / len(requests),
                cost_usd=None,
                finish_reason=finish,
                logprobs=self._token_logprobs(produced, logprobs[row]),
            ))
        return responses

    def _token_logprobs(self, ids: list[int], rows: Any) -> tuple[TokenLogprob, ...]:
        tok = self.tokenizer
        k = min(self.top_k_logprobs, rows.shape[-1])
        result = []
        for pos, token_id in enumerate(ids):
            top: tuple[tuple[int, float], ...] = ()
            if k:
                values, indices = rows[pos].topk(k)
                top = tuple((int(i), float(v)) for i, v in zip(indices.tolist(), values.tolist()))
            result.append(TokenLogprob(token_id, tok.decode([token_id]), float(rows[pos, token_id]), top))
        return tuple(result)

    # -- teacher forcing -------------------------------------------------------------------------------------
    def teacher_forced_logprobs(self, messages: Sequence[tuple[str, str]], answer_text: str,
                                add_eos: bool = True) -> tuple[list[int], np.ndarray]:
        """:meth:`teacher_forced_logprobs_many` of one item."""
        return self.teacher_forced_logprobs_many([(messages, answer_text, add_eos)])[0]

    def teacher_forced_logprobs_many(self, items: Sequence[tuple[Sequence[tuple[str, str]], str, bool]]
                                     ) -> list[tuple[list[int], np.ndarray]]:
        """Run the model on each item's prompt + answer text (+ EOS when the item says so), in left-padded
        batches of ``batch_size`` sorted by length.

        Returns, per item, the answer's token ids and a float32 array ``(len(ids), vocab)`` of the
        log-softmax that predicted each of them: the inputs of :mod:`pytest_llmswap.drift.logits`.
        """
        self.load()
        assert self._loaded is not None
        tok, eos = self._loaded.tokenizer, self._loaded.eos_ids
        encoded: list[tuple[list[int], list[int]]] = []
        for messages, answer_text, add_eos in items:
            prompt, add_special = self.prompt_text(list(messages))
            answer_ids = tok(answer_text, add_special_tokens=False)["input_ids"]
            encoded.append((tok(prompt, add_special_tokens=add_special)["input_ids"],
                            answer_ids + [eos[0]] if add_eos and eos else answer_ids))
        order = sorted(range(len(items)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
        results: list[tuple[list[int], np.ndarray]] = [([], None)] * len(items)  # type: ignore[list-item]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, rows in zip(batch, self._forced_batch([encoded[i] for i in batch])):
                results[i] = (encoded[i][1], rows)
        return results

    def _forced_batch(self, rows: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        """One forward pass over ``(prompt ids, answer ids)`` rows; each answer's log-softmax predictions."""
        import torch

        assert self._loaded is not None
        loaded = self._loaded
        width = max(len(p) + len(a) for p, a in rows)
        ids = torch.full((len(rows), width), loaded.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (prompt_ids, answer_ids) in enumerate(rows):
            seq = prompt_ids + answer_ids
            ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
        # Left padding: position ids count real tokens only, so a padded row sees the positions it would alone.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        # Every answer ends at the right edge; position i predicts token i + 1, so the last ``keep``
        # positions cover every row's answer predictions (and nothing else needs the vocabulary projection).
        keep = max(len(a) for _, a in rows) + 1
        try:
            with torch.inference_mode():
                logits = loaded.model(input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device),
                                      position_ids=positions.to(loaded.device), logits_to_keep=keep).logits
        except torch.OutOfMemoryError as exc:
            raise ModelCallError(f"hf model {self.spec.target} ran out of memory on {loaded.device} scoring a "
                                 f"batch of {len(rows)}: {str(exc).splitlines()[0]}") from None
        out = []
        for r, (_, answer_ids) in enumerate(rows):
            n = len(answer_ids)
            out.append(logits[r, keep - 1 - n : keep - 1].float().log_softmax(dim=-1).cpu().numpy())
        return out
