"""Helpers for the tests that run the committed example models (examples/models/teacher, student)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2

from pytest_llmswap.types import ModelSpec, Request

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEACHER = EXAMPLES / "models" / "teacher"
STUDENT = EXAMPLES / "models" / "student"


def hf_spec(folder: Path | str = TEACHER, **options: str) -> ModelSpec:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return ModelSpec(name=f"hf:{folder}" + (f"?{query}" if query else ""), kind="hf", target=str(folder),
                     options=tuple(options.items()))


def load_cases() -> list[dict]:
    with open(EXAMPLES / "data" / "tickets.jsonl") as fh:
        return [json.loads(line) for line in fh]


def triage_messages(case: dict) -> tuple[tuple[str, str], ...]:
    """The example contract's prompt for ``case``, as the plugin renders it (StrictUndefined)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = env.from_string((EXAMPLES / "prompts" / "triage.j2").read_text())
    return (("user", template.render(**case)),)


def requests_for(spec: ModelSpec, cases: list[dict], sample: int = 0, **params: object) -> list[Request]:
    return [Request(model=spec, messages=triage_messages(c), params=tuple(sorted(params.items())), sample=sample)
            for c in cases]
