"""Stored throughput calibrations: one per checkpoint and hardware, in the cache folder, reused by later runs.

A GPU-hour price is only as steady as the throughput it divides by, and a throughput re-measured in every
run follows the machine's load. So a model is calibrated once and its rounds are stored under a key made of
what decides its speed: the digest of its weight files (a copy in another folder is the same model), its
options (dtype, quantization, device, batch size), the machine's processor or GPU, and the torch and
transformers versions. A served model is keyed by what the run calls (its spec's identity): its hardware
is the server's, which this machine cannot see.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from ..files import OutputWriteError, write_text
from ..types import ModelSpec
from .backends import kind_of

STORE_NAME = "throughput.json"
LOCK_NAME = ".throughput.lock"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """The output tokens per second of one model in each round of its calibration, where and when it ran."""

    rounds_tok_s: tuple[float, ...]
    hardware: str
    measured_at: str  # ISO 8601, UTC

    @property
    def throughput_tok_s(self) -> float:
        """The fastest round: load only ever slows a round down (see :mod:`.throughput`)."""
        return max(self.rounds_tok_s)


def calibration_key(spec: ModelSpec) -> tuple[str, str]:
    """``(key, hardware)``: the store's key for ``spec`` and the hardware it is measured on, in words."""
    if kind_of(spec).local:
        from .hf_spec import is_local

        checkpoint = spec.target
        if is_local(spec.target):
            from .weights import weights_digest

            checkpoint = "sha256:" + weights_digest(Path(spec.target).expanduser().resolve())
        options = spec.option_dict
        device = options.get("device", "cpu")
        variant = ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if k != "device")
        hardware = (f"{_processor(device)}, {variant or 'as stored'}, torch {_version('torch')}, "
                    f"transformers {_version('transformers')}")
    else:
        checkpoint, hardware = spec.identity, f"served ({spec.param_dict.get('api_base') or spec.target}), wall time"
    key = hashlib.sha256(json.dumps([spec.kind, checkpoint, hardware]).encode()).hexdigest()[:24]
    return key, hardware


def _processor(device: str) -> str:
    """The chip the model runs on and the clock that times it there."""
    if device == "cpu":
        return f"cpu {_cpu_name()}, 1 thread, CPU time"
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{device} {name}, wall time"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


class ThroughputStore:
    """The calibrations of one cache folder, in one JSON file written atomically under a file lock."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STORE_NAME

    def lock(self) -> FileLock:
        """Held from reading the store to writing it: xdist workers wait, then reuse the first one's pass."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(self.path.parent / LOCK_NAME)

    def load(self) -> tuple[dict[str, Calibration], str | None]:
        """The stored calibrations, and a warning line when the file is there but unreadable (then none)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('format_version')!r}, not {FORMAT_VERSION}")
            stored = {key: Calibration(tuple(float(r) for r in entry["rounds_tok_s"]), str(entry["hardware"]),
                                       str(entry["measured_at"]))
                      for key, entry in data["calibrations"].items()}
            if not all(c.rounds_tok_s and min(c.rounds_tok_s) > 0 for c in stored.values()):
                raise ValueError("a calibration without a positive round")
            return stored, None
        except FileNotFoundError:
            return {}, None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return {}, f"{self.path} is not a readable throughput calibration ({reason}); re-measuring"

    def save(self, calibrations: dict[str, Calibration]) -> str | None:
        """Write every calibration; a warning line when the file cannot be written (the run goes on)."""
        data = {"format_version": FORMAT_VERSION,
                "calibrations": {key: asdict(c) for key, c in sorted(calibrations.items())}}
        try:
            write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OutputWriteError as exc:
            return f"{exc}; the calibration is used in this run only"
        return None
