"""The golden store: one reviewable JSON file per test module, written atomically under a lock."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

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

    @property
    def responses(self) -> list[Response]:
        return [Response.from_dict(s) for s in self.samples]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_hash": self.prompt_hash, "variables": self.variables, "messages": self.messages,
                "model": self.model, "params": public_params(self.params), "samples": self.samples,
                "recorded_at": self.recorded_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoldenCase:
        return cls(prompt_hash=data["prompt_hash"], variables=data.get("variables", {}),
                   messages=data.get("messages", []), model=data.get("model", ""), params=data.get("params", {}),
                   samples=list(data["samples"]), recorded_at=data.get("recorded_at", ""))


def golden_path(module_path: Path) -> Path:
    """``__llm_goldens__/<module>.json`` beside the test module."""
    return module_path.parent / GOLDEN_DIR / f"{module_path.stem}.json"


def load_golden_file(path: Path) -> dict[str, dict[str, GoldenCase]]:
    """Read a golden file as ``{contract_key: {case_id: GoldenCase}}``; a missing file is empty."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GoldenFormatError(f"golden file {path} is not valid JSON ({exc}); restore it from version "
                                "control or delete it and re-record") from None
    if not isinstance(data, dict) or not isinstance(data.get("format_version"), int):
        raise GoldenFormatError(f"golden file {path} has no format_version; it was not written by pytest-llmswap")
    if data["format_version"] > GOLDEN_FORMAT_VERSION:
        raise GoldenFormatError(f"golden file {path} has format version {data['format_version']}, newer than "
                                f"this pytest-llmswap reads ({GOLDEN_FORMAT_VERSION}); upgrade pytest-llmswap")
    try:
        return {key: {cid: GoldenCase.from_dict(c) for cid, c in contract["cases"].items()}
                for key, contract in data.get("contracts", {}).items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise GoldenFormatError(f"golden file {path} is malformed (missing or wrong field {exc}); restore it "
                                "from version control or re-record") from None


def dump_golden_file(contracts: dict[str, dict[str, GoldenCase]]) -> str:
    """Serialise goldens the way they are committed: sorted keys, indented, one trailing newline.

    Small containers (a usage block, one token's log-probs) stay on one line, so a file with log-probs
    reads and diffs a line per token rather than a line per number.
    """
    data = {"format_version": GOLDEN_FORMAT_VERSION,
            "contracts": {key: {"cases": {cid: case.to_dict() for cid, case in cases.items()}}
                          for key, cases in contracts.items() if cases}}
    return _pretty(data, 0) + "\n"


def _pretty(value: Any, depth: int, width: int = 200) -> str:
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


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lock_for(path: Path) -> FileLock:
    # The lock lives in the temp dir so that no lock file litters the reviewed __llm_goldens__ folder.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"llmswap-golden-{digest}.lock")


@dataclass
class GoldenStore:
    """Reads golden files on demand and writes this session's recordings back, merged under a lock."""

    _files: dict[Path, dict[str, dict[str, GoldenCase]]] = field(default_factory=dict)
    _pending: dict[Path, dict[tuple[str, str], GoldenCase]] = field(default_factory=dict)
    _paths: dict[Path, Path] = field(default_factory=dict)

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

    def flush(self) -> list[Path]:
        """Merge staged recordings into each file as it is on disk now (other workers may have written)."""
        written = []
        for path, staged in self._pending.items():
            with _lock_for(path):
                current = load_golden_file(path)
                for (key, case_id), case in staged.items():
                    current.setdefault(key, {})[case_id] = case
                atomic_write(path, dump_golden_file(current))
                self._files[path] = current
            written.append(path)
        self._pending.clear()
        return written
