"""Helpers for the tests that run the committed example models (examples/models/teacher, student)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import jinja2
import pytest

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


@contextmanager
def transformers_serve(folder: Path, cache: Path, replicas: int = 1) -> Iterator[list[tuple[str, Path]]]:
    """``replicas`` `transformers serve` processes of ``folder`` on 127.0.0.1, offline, started together;
    yields each one's ``/v1`` base URL and log file. Each takes about 13 s to start."""
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers CLI is not installed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    with ExitStack() as stack:
        servers = []
        for i in range(replicas):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            log_path = cache / f"serve-{i}.log"
            log = stack.enter_context(open(log_path, "w+"))
            proc = subprocess.Popen(
                [cli, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            stack.callback(_stop, proc)
            servers.append((f"http://127.0.0.1:{port}", log_path, proc))
        deadline = time.monotonic() + 120
        for base, log_path, proc in servers:
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"transformers serve did not start (exit {proc.poll()}):\n"
                                    f"{log_path.read_text()[-3000:]}")
                    time.sleep(0.5)
        yield [(f"{base}/v1", log_path) for base, log_path, _ in servers]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The CLI may start workers of its own: end the whole process group it leads.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
