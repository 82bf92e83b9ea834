"""End to end: the example teacher behind `transformers serve`, called through litellm, answers as HFBackend does.

This is how a team tests an OpenAI-compatible deployment (transformers serve, vLLM, TGI): an ``openai/...``
model with ``api_base``, or one named model over several deployments (``api_bases``, litellm's Router). Slow:
the servers take about 13 s to start; two replicas start once, in parallel, for the whole module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from hf_fixtures import (  # noqa: E402
    EXAMPLES, TEACHER, hf_spec, load_cases, requests_for, transformers_serve, triage_messages)

from pytest_llmswap.models.hf import HFBackend  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, Path]]]:
    """Two `transformers serve` replicas of the example teacher: each one's ``/v1`` base URL and access log."""
    with transformers_serve(TEACHER, tmp_path_factory.mktemp("hf_cache"), replicas=2) as servers:
        yield servers


def completions_served(log: Path) -> int:
    """uvicorn's access log: one line per completion a replica served."""
    return log.read_text().count("POST /v1/chat/completions")


def test_served_greedy_answers_equal_in_process(replicas: list[tuple[str, Path]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    [(server, _log), _] = replicas
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


@pytest.fixture(scope="module")
def in_process_answers() -> dict[str, str]:
    """The example teacher's greedy answers to 20 cases, in this process. Module-scoped, so torch and the model
    load before pytester snapshots sys.modules: modules first imported after it are dropped when the test
    ends, and a later import of transformers' lazily loaded model classes would then fail."""
    cases = load_cases()[:20]
    local = HFBackend(hf_spec())
    return {c["id"]: r.text for c, r in zip(cases, local.complete(requests_for(local.spec, cases, max_tokens=128)))}


@pytest.mark.slow(seconds=21)  # with the replicas' start, when it runs first (longest first under xdist)
def test_two_transformers_serve_replicas_are_one_candidate(in_process_answers: dict[str, str],
                                                           replicas: list[tuple[str, Path]],
                                                           pytester: pytest.Pytester, litellm_loaded: object) -> None:
    """The example teacher on two `transformers serve` replicas, one named model (litellm's Router over
    ``api_bases``): both replicas answer, and every answer is the in-process greedy one."""
    cases = load_cases()[:20]
    expected = in_process_answers
    pytester.makefile(".jsonl", cases="\n".join(json.dumps(c) for c in cases))
    (pytester.path / "triage.j2").write_text((EXAMPLES / "prompts" / "triage.j2").read_text())
    pytester.makepyfile(test_served="""
from pytest_llmswap import llm_contract

@llm_contract(prompt="triage.j2", cases="cases.jsonl", params={"max_tokens": 128, "temperature": 0})
def test_triage(output, case):
    assert output.text
""")
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false

[tool.llmswap.models.served]
model = "openai/{TEACHER}"
api_bases = {json.dumps([base for base, _ in replicas])}
api_key = "unused"
""")
    before = [completions_served(log) for _, log in replicas]  # the other test of this module may have called one
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=20)
    result = pytester.runpytest("--candidate-model", "served", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=20)
    served = [completions_served(log) - n for (_, log), n in zip(replicas, before)]
    assert sum(served) == 20 and min(served) > 0, served
    out = json.loads((pytester.path / "out.json").read_text())
    assert {c["case_id"]: c["output"]["text"] for c in out["cases"]} == expected
