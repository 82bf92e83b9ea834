"""End to end: the example teacher behind `transformers serve`, called through litellm, answers as HFBackend does.

This is how a team tests an OpenAI-compatible deployment (transformers serve, vLLM, TGI): an ``openai/...``
model with ``api_base``. Slow: the server takes about 13 s to start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from hf_fixtures import TEACHER, hf_spec, load_cases, requests_for, triage_messages  # noqa: E402

from pytest_llmswap.models.hf import HFBackend  # noqa: E402

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers CLI is not installed")
    port = free_port()
    cache = tmp_path_factory.mktemp("hf_cache")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    log = open(cache / "serve.log", "w+")
    proc = subprocess.Popen(
        [cli, "serve", str(TEACHER), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"transformers serve did not start (exit {proc.poll()}):\n{log.read()[-3000:]}")
                time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        # The CLI may start workers of its own: end the whole process group it leads.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_served_greedy_answers_equal_in_process(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    cases = load_cases()[::6][:10]
    backend = HFBackend(hf_spec())
    expected = [r.text for r in backend.complete(requests_for(backend.spec, cases))]
    served = []
    for case in cases:
        reply = litellm.completion(
            model=f"openai/{TEACHER}", api_base=server, api_key="x", temperature=0, max_tokens=128,
            messages=[{"role": r, "content": c} for r, c in triage_messages(case)],
        )
        served.append(reply.choices[0].message.content)
    assert served == expected
