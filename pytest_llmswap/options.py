"""Turns command-line options, ini values and ``[tool.llmswap]`` into validated :class:`RunOptions`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from .config import ConfigError, load_config
from .models.backends import kind_of
from .models.executor import ExecutionSettings
from .models.spec import SpecError, parse_spec
from .run.keys import RECORD_MODES, RunOptions
from .types import ModelSpec


def _get(config: pytest.Config, option: str, ini: str) -> Any:
    value = config.getoption(option)
    if value is None or value == []:
        value = config.getini(ini)
    return value if value not in ("", []) else None


def _number(config: pytest.Config, option: str, ini: str, kind: type, default: Any, minimum: float) -> Any:
    raw = _get(config, option, ini)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"--{option.replace('_', '-')} / {ini}: {raw!r} is not a {kind.__name__}") from None
    if not math.isfinite(value):  # nan passes every comparison below, and inf never ends a wait
        raise ValueError(f"--{option.replace('_', '-')} / {ini}: {raw!r} is not a finite number")
    if value < minimum:
        raise ValueError(f"--{option.replace('_', '-')} / {ini}: must be at least {minimum}, got {value}")
    return value


def _path(config: pytest.Config, option: str, ini: str) -> Path | None:
    """A path from the command line is relative to the folder pytest was started in (as ``--junitxml``), one
    from the ini file to the rootdir."""
    raw = config.getoption(option)
    if raw:
        return config.invocation_params.dir / raw
    raw = config.getini(ini)
    return config.rootpath / raw if raw else None


def build_options(config: pytest.Config, run_id: str) -> RunOptions:
    """Validate everything a run needs before any test is collected or any model is called.

    Raises ValueError with one line saying what is wrong and how to fix it.
    """
    try:
        project = load_config(config.rootpath)
        incumbent_text = _get(config, "incumbent_model", "llmswap_incumbent_model")
        candidate_texts = _get(config, "candidate_model", "llmswap_candidate_models") or []
        incumbent = parse_spec(incumbent_text, project.models, config.rootpath) if incumbent_text else None
        candidates = tuple(parse_spec(t, project.models, config.rootpath) for t in candidate_texts)
    except (ConfigError, SpecError) as exc:
        raise ValueError(str(exc)) from None
    names = [c.name for c in candidates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"--candidate-model given twice with the name {duplicates[0]!r}; name them apart "
                         "with NAME=SPEC")
    record = _get(config, "llmswap_record", "llmswap_record")
    if record is not None and record not in RECORD_MODES:
        raise ValueError(f"llmswap_record = {record!r}: use one of {', '.join(RECORD_MODES)}")
    samples = _number(config, "llmswap_samples", "llmswap_samples", int, 1, 1)
    for spec in ((incumbent,) if record and incumbent else ()) + candidates:
        _check_callable(spec)
    no_cache = config.getoption("llmswap_no_cache")
    cache_dir = _path(config, "llmswap_cache_dir", "llmswap_cache_dir") or config.rootpath / ".llmswap_cache"
    report = _path(config, "llmswap_report", "llmswap_report")
    if report is None and candidates:
        report = config.rootpath / "llmswap-report.html"
    record_hint = f"pytest --incumbent-model {incumbent_text or 'SPEC'} --llmswap-record new"
    return RunOptions(
        incumbent=incumbent, incumbent_text=(incumbent_text or "").strip(), models=project.models,
        root=config.rootpath, candidates=candidates, record=record, samples=samples,
        cache_dir=None if no_cache else cache_dir,
        recalibrate=bool(config.getoption("llmswap_recalibrate")),
        execution=ExecutionSettings(
            concurrency=_number(config, "llmswap_concurrency", "llmswap_concurrency", int, 8, 1),
            timeout_s=_number(config, "llmswap_timeout", "llmswap_timeout", float, 60.0, 0.001),
            retries=_number(config, "llmswap_retries", "llmswap_retries", int, 3, 0),
            backoff_s=_number(config, "llmswap_backoff", "llmswap_backoff", float, 0.5, 0),
            max_wait_s=_number(config, "llmswap_max_wait", "llmswap_max_wait", float, 300.0, 0)),
        run_id=run_id, settings=project.settings, record_command=record_hint,
        report_html=report, report_json=_path(config, "llmswap_json", "llmswap_json"),
        report_markdown=_path(config, "llmswap_markdown", "llmswap_markdown"),
        report_logprobs=bool(config.getoption("llmswap_json_logprobs")),
        prune=_prune(config, record),
    )


def _check_callable(spec: ModelSpec) -> None:
    """A model that will be called must be reachable in principle: known provider and key, or a local
    checkpoint on a device this machine has."""
    kind_of(spec).check(spec)


def _prune(config: pytest.Config, record: str | None) -> bool:
    if config.getoption("llmswap_prune") and not record:
        raise ValueError("--llmswap-prune removes unused goldens while recording: add --llmswap-record new (or all)")
    return bool(config.getoption("llmswap_prune"))
