"""End to end: the example teacher behind `transformers serve`, called through litellm, answers as HFBackend does.

This is how a team tests an OpenAI-compatible deployment (transformers serve, vLLM, TGI): an ``openai/...``
model with ``api_base``. Slow: the server takes about 13 s to start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from hf_fixtures import (  # noqa: E402
    TEACHER, hf_spec, load_cases, requests_for, transformers_serve, triage_messages)

from pytest_llmswap.models.hf import HFBackend  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with transformers_serve(TEACHER, tmp_path_factory.mktemp("hf_cache")) as [(base, _log)]:
        yield base


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
