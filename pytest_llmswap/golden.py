"""The golden store: one reviewable JSON file per test module, written atomically under a lock."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from .files import OutputWriteError, write_bytes, write_text
from .types import Response, public_params

GOLDEN_FORMAT_VERSION = 1
GOLDEN_DIR = "__llm_goldens__"


class GoldenFormatError(ValueError):
    """A golden file that cannot be read: malformed JSON, wrong shape or a newer format version."""


@dataclass
class GoldenCase:
    """The incumbent's recorded answer(s) for one case."""

    prompt_hash: str
    variables: dict[str, Any]
    messages: list[list[str]]
    model: str
    params: dict[str, Any]
    samples: list[dict[str, Any]]
    recorded_at: str = ""
    recorded_by: str = ""  # the incumbent as given when recording (a configured NAME or a spec), to price replays
    # Invariance checks: label -> {"prompt_hash", "sample"}, the incumbent's answer to each perturbed input.
    perturbed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def responses(self) -> list[Response]:
        return [Response.from_dict(s) for s in self.samples]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_hash": self.prompt_hash, "variables": self.variables, "messages": self.messages,
                "model": self.model, "params": public_params(self.params), "samples": self.samples,
                "recorded_at": self.recorded_at, **({"recorded_by": self.recorded_by} if self.recorded_by else {}),
                **({"perturbed": self.perturbed} if self.perturbed else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoldenCase:
        """Raises KeyError/TypeError/ValueError for a case that is not a golden (the loader names the file)."""
        samples = data["samples"]
        if not isinstance(samples, list) or not samples:
            raise ValueError("'samples' must be a non-empty list")
        for i, sample in enumerate(samples):
            _check_sample(i + 1, sample)
        return cls(prompt_hash=str(data["prompt_hash"]), variables=data.get("variables", {}),
                   messages=data.get("messages", []), model=data.get("model", ""), params=data.get("params", {}),
                   samples=list(samples), recorded_at=data.get("recorded_at", ""),
                   recorded_by=str(data.get("recorded_by", "")), perturbed=_perturbed(data.get("perturbed", {})))


def _perturbed(data: Any) -> dict[str, dict[str, Any]]:
    """A golden's perturbed answers, checked like its samples."""
    if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("prompt_hash"), str)
                                             for v in data.values()):
        raise ValueError("'perturbed' must map each perturbation to its prompt_hash and sample")
    for label, entry in data.items():
        _check_sample(f"of perturbation {label!r}", entry.get("sample"))
    return data


def _check_sample(number: int | str, sample: Any) -> None:
    """A sample's fields have the types every report reads them as (else a summary fails after the run)."""
    if not isinstance(sample, dict) or not isinstance(sample.get("text"), str):
        raise ValueError(f"sample {number} has no 'text' string")
    usage = sample.get("usage") or {}
    counts = [usage.get(k, 0) for k in ("input_tokens", "output_tokens", "reasoning_tokens")] if isinstance(
        usage, dict) else [None]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ValueError(f"sample {number}: 'usage' must hold token counts (whole numbers), not {str(usage)[:60]!r}")
    for name in ("latency_s", "cost_usd"):
        value = sample.get(name)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value) and value >= 0):
            raise ValueError(f"sample {number}: {name!r} must be a number (0 or more) or null, not {str(value)[:60]!r}")


def golden_path(module_path: Path) -> Path:
    """``__llm_goldens__/<module>.json`` beside the test module."""
    return module_path.parent / GOLDEN_DIR / f"{module_path.stem}.json"


def logprobs_path(path: Path) -> Path:
    """The compressed sidecar beside a golden file that holds its samples' per-token log-probs.

    Log-probs are most of a golden's bytes and change on every re-record: kept apart, the reviewed JSON
    holds only prompts, answers and check outcomes, while teacher-forced KL still finds them.
    """
    return path.with_name(f"{path.stem}.logprobs.json.gz")


def _load_logprobs(path: Path, contracts: dict[str, dict[str, GoldenCase]]) -> None:
    sidecar = logprobs_path(path)
    if not sidecar.exists():
        return
    try:
        data = json.loads(gzip.decompress(sidecar.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise GoldenFormatError(f"golden log-probs file {sidecar} cannot be read ({exc}); delete it (KL then needs "
                                "a re-record) or restore it from version control") from None
    for key, cases in (data.get("contracts") or {}).items():
        for cid, per_sample in cases.items():
            case = contracts.get(key, {}).get(cid)
            if case is None:
                continue
            for sample, logprobs in zip(case.samples, per_sample):
                if logprobs is not None and "logprobs" not in sample:
                    sample["logprobs"] = logprobs


def dump_logprobs(contracts: dict[str, dict[str, GoldenCase]]) -> bytes | None:
    """The sidecar's bytes (gzip of compact JSON, reproducible: no timestamp), or None when no sample has any."""
    data = {key: {cid: [s.get("logprobs") for s in case.samples] for cid, case in cases.items()
                  if any(s.get("logprobs") is not None for s in case.samples)}
            for key, cases in contracts.items()}
    data = {key: cases for key, cases in data.items() if cases}
    if not data:
        return None
    text = json.dumps({"format_version": GOLDEN_FORMAT_VERSION, "contracts": data}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True)
    return gzip.compress(text.encode(), mtime=0)


def load_golden_file(path: Path) -> dict[str, dict[str, GoldenCase]]:
    """Read a golden file as ``{contract_key: {case_id: GoldenCase}}``; a missing file is empty."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GoldenFormatError(f"golden file {path} cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GoldenFormatError(f"golden file {path} is not valid JSON ({exc}); restore it from version "
                                "control or delete it and re-record") from None
    if not isinstance(data, dict) or not isinstance(data.get("format_version"), int):
        raise GoldenFormatError(f"golden file {path} has no format_version; it was not written by pytest-llmswap")
    if data["format_version"] > GOLDEN_FORMAT_VERSION:
        raise GoldenFormatError(f"golden file {path} has format version {data['format_version']}, newer than "
                                f"this pytest-llmswap reads ({GOLDEN_FORMAT_VERSION}); upgrade pytest-llmswap")
    contracts: dict[str, dict[str, GoldenCase]] = {}
    raw = data.get("contracts") or {}
    for key, contract in (raw.items() if isinstance(raw, dict) else [("contracts", None)]):
        if not isinstance(contract, dict) or not isinstance(contract.get("cases"), dict):
            raise GoldenFormatError(f"golden file {path} is malformed at {key} (no 'cases' object); restore it "
                                    "from version control or re-record it")
        for cid, case in contract["cases"].items():
            try:
                contracts.setdefault(key, {})[cid] = GoldenCase.from_dict(case)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise GoldenFormatError(f"golden file {path} is malformed at {key}[{cid}] ({detail}); restore "
                                        "it from version control or re-record it") from None
    _load_logprobs(path, contracts)
    return contracts


def dump_golden_file(contracts: dict[str, dict[str, GoldenCase]]) -> str:
    """Serialise goldens the way they are committed: sorted keys, indented, one trailing newline, and no
    log-probs (they go to the sidecar, :func:`dump_logprobs`). Small containers stay on one line.
    """
    data = {"format_version": GOLDEN_FORMAT_VERSION,
            "contracts": {key: {"cases": {cid: _without_logprobs(case.to_dict()) for cid, case in cases.items()}}
                          for key, cases in contracts.items() if cases}}
    return _pretty(data, 0) + "\n"


def _without_logprobs(case: dict[str, Any]) -> dict[str, Any]:
    return {**case, "samples": [{k: v for k, v in s.items() if k != "logprobs"} for s in case["samples"]]}


def _pretty(value: Any, depth: int, width: int = 320) -> str:
    flat = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or not value or len(flat) <= width:
        return flat
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(value[k], depth + 1, width)}"
                 for k in sorted(value)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{_pretty(v, depth + 1, width)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def _lock_for(path: Path) -> FileLock:
    # The lock lives in the temp dir so that no lock file litters the reviewed __llm_goldens__ folder.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"llmswap-golden-{digest}.lock")


def _write_goldens(path: Path, contracts: dict[str, dict[str, GoldenCase]]) -> None:
    """The golden file and its log-probs sidecar (written first: a golden never points at missing log-probs)."""
    sidecar = dump_logprobs(contracts)
    if sidecar is not None:
        write_bytes(logprobs_path(path), sidecar)
    elif logprobs_path(path).exists():
        logprobs_path(path).unlink()
    if any(contracts.values()):
        write_text(path, dump_golden_file(contracts))
    elif path.exists():  # every golden pruned: no empty file left behind
        path.unlink()


@dataclass
class GoldenStore:
    """Reads golden files on demand and writes this session's recordings back, merged under a lock."""

    _files: dict[Path, dict[str, dict[str, GoldenCase]]] = field(default_factory=dict)
    _pending: dict[Path, dict[tuple[str, str], GoldenCase | None]] = field(default_factory=dict)
    _paths: dict[Path, Path] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)  # every file flushed, also when a later one failed

    def contracts(self, module_path: Path) -> dict[str, dict[str, GoldenCase]]:
        """All goldens of a test module (raises GoldenFormatError for a bad file)."""
        path = self._paths.get(module_path)
        if path is None:
            path = self._paths[module_path] = golden_path(module_path)
        if path not in self._files:
            self._files[path] = load_golden_file(path)
        return self._files[path]

    def get(self, module_path: Path, key: str, case_id: str) -> GoldenCase | None:
        return self.contracts(module_path).get(key, {}).get(case_id)

    def put(self, module_path: Path, key: str, case_id: str, case: GoldenCase) -> None:
        """Stage a recording; it becomes visible to ``get`` now and reaches disk on ``flush``."""
        self.contracts(module_path).setdefault(key, {})[case_id] = case
        path = self._paths[module_path]
        self._pending.setdefault(path, {})[(key, case_id)] = case

    def remove(self, module_path: Path, key: str, case_id: str) -> None:
        """Stage the removal of an unused golden (``--llmswap-prune``); it leaves the disk on ``flush``."""
        self.contracts(module_path).get(key, {}).pop(case_id, None)
        self._pending.setdefault(self._paths[module_path], {})[(key, case_id)] = None

    def flush(self) -> list[Path]:
        """Merge staged recordings into each file as it is on disk now (other workers may have written).

        Every file that can be written is; then the first failure is raised as one line (an
        :class:`OutputWriteError` or :class:`GoldenFormatError` naming the file), and what could not be
        written stays staged.
        """
        written: list[Path] = []
        failures: list[OutputWriteError | GoldenFormatError] = []
        for path, staged in list(self._pending.items()):
            try:
                with _lock_for(path):
                    current = load_golden_file(path)
                    for (key, case_id), case in staged.items():
                        if case is None:
                            current.get(key, {}).pop(case_id, None)
                        else:
                            current.setdefault(key, {})[case_id] = case
                    _write_goldens(path, current)
                    self._files[path] = current
            except (OutputWriteError, GoldenFormatError) as exc:
                failures.append(exc)
                continue
            del self._pending[path]
            written.append(path)
        self.written.extend(written)
        if len(failures) > 1:
            raise GoldenFormatError(f"{failures[0]} (and {len(failures) - 1} more golden file(s))")
        if failures:
            raise failures[0]
        return written
