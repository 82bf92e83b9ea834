"""The plain types of one run: which item is which, what was asked for, and the error for bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.executor import ExecutionSettings
from ..settings import Settings
from ..types import ModelSpec

RECORD_MODES = ("new", "all")
#: The case id of a statistical contract's item: it stands for every case of the contract on one model row.
ALL_CASES = "*"


class RunError(Exception):
    """Bad input found before any model call: shown as one line and the run stops."""


@dataclass(frozen=True)
class ItemKey:
    """Identifies one test item: a contract's case on a model (``model`` None is the incumbent row)."""

    nodeid: str
    case_id: str
    model: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """What the command line and ini asked for."""

    incumbent: ModelSpec | None = None
    incumbent_text: str = ""  # as given (a [tool.llmswap.models] name or a spec): goldens name their recorder by it
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # [tool.llmswap.models]
    root: Path | None = None  # where relative hf: folders of ``models`` are looked up
    candidates: tuple[ModelSpec, ...] = ()
    record: str | None = None
    samples: int = 1
    recalibrate: bool = False  # measure GPU-hour throughput again instead of reusing the stored calibration
    cache_dir: Path | None = None
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    run_id: str = ""
    settings: Settings = field(default_factory=Settings)
    record_command: str = "pytest --incumbent-model SPEC --llmswap-record new"
    report_html: Path | None = None
    report_json: Path | None = None
    report_markdown: Path | None = None
    report_logprobs: bool = False
    prune: bool = False
