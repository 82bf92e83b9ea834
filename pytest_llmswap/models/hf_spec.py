"""Checking an ``hf:`` spec before any test runs: its options, its folder, and the device it asks for.

Nothing here imports torch or transformers unless the spec asks for CUDA.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from ..types import ModelCallError, ModelSpec

DTYPES = ("float32", "bfloat16", "float16")
QUANTS = ("int8", "int8-dynamic", "bnb8", "bnb4")
DEVICES = ("cpu", "cuda", "auto")
INT_OPTIONS = {"batch_size": 1, "max_new_tokens": 1, "top_k_logprobs": 0}  # name -> smallest allowed value


def validate_hf_options(options: dict[str, str]) -> None:
    """Reject an unknown ``hf:`` option or a bad value with one line naming it and the allowed values."""
    choices = {"dtype": DTYPES, "quant": QUANTS, "device": DEVICES}
    for key, value in options.items():
        if key in choices:
            if value not in choices[key]:
                raise ValueError(f"hf option {key}={value!r} is not one of {', '.join(choices[key])}")
        elif key in INT_OPTIONS:
            low = INT_OPTIONS[key]
            if not value.isdigit() or int(value) < low:
                raise ValueError(f"hf option {key}={value!r} must be an integer >= {low}")
        else:
            allowed = ", ".join([*choices, *INT_OPTIONS])
            raise ValueError(f"unknown hf option {key!r}; allowed options: {allowed}")
    if options.get("quant") in ("bnb8", "bnb4") and options.get("device") == "cpu":
        raise ValueError(f"hf option quant={options['quant']} needs device=cuda or auto (bitsandbytes is CUDA only)")


def canonical_options(target: str, options: dict[str, str]) -> dict[str, str]:
    """``options`` without the ones that only restate what loading does anyway: ``device=cpu``, and a ``dtype``
    equal to the one the local checkpoint is stored in (what loading without one gives). So one checkpoint
    spelt two ways is one model: one load, one cache key, one throughput measurement for its price."""
    canonical = {k: v for k, v in options.items() if not (k == "device" and v == "cpu")}
    if "dtype" in canonical and canonical["dtype"] == _stored_dtype(target):
        del canonical["dtype"]
    return canonical


def _stored_dtype(target: str) -> str | None:
    """The dtype a local checkpoint's config.json records (``dtype``, or ``torch_dtype`` before transformers 5)."""
    config = Path(target).expanduser() / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("dtype", data.get("torch_dtype")) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def is_local(target: str) -> bool:
    return Path(target).expanduser().exists() or target.startswith((".", "/", "~")) or target.count("/") > 1 \
        or "\\" in target


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ModelCallError(f"hf model folder does not exist: {folder}")
    if not (folder / "config.json").is_file():
        raise ModelCallError(f"hf model folder has no config.json (not a transformers checkpoint): {folder}")
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((folder / name).is_file() for name in tokenizer_files):
        raise ModelCallError(f"hf model folder has no tokenizer ({', '.join(tokenizer_files)}): {folder}")


def check_spec(spec: ModelSpec) -> None:
    """Fail before any test runs when the folder is not a checkpoint or CUDA is asked for and absent.

    Imports torch only when the spec asks for CUDA.
    """
    if is_local(spec.target):
        check_folder(Path(spec.target).expanduser().resolve())
    options = spec.option_dict
    if options.get("device") == "cuda" or options.get("quant") in ("bnb8", "bnb4"):
        import torch

        if not torch.cuda.is_available():
            asked = f"quant={options['quant']}" if options.get("quant") in ("bnb8", "bnb4") else "device=cuda"
            raise ModelCallError(f"hf model {spec.target}: {asked} needs a CUDA GPU and torch sees none")
