"""A named model with several deployments (``api_bases``): litellm's Router balances them, the plugin sees one
model. Tests against two fault-injecting servers; the one against two `transformers serve` replicas of the example
teacher is in test_serve.py, which starts them once for its module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openai_server import chat_server
from pytest_llmswap.intercept.handlers import candidate_answer
from pytest_llmswap.models.litellm_backend import ALLOWED_FAILS, LiteLLMBackend
from pytest_llmswap.models.spec import SpecError, parse_spec
from pytest_llmswap.types import ModelCallError, Request, Response

SECRET = "sk-router-secret-0123456789"
CASES = [{"id": f"c{i}", "word": f"w{i}"} for i in range(20)]


def shout(prompt: str) -> str:
    return prompt.upper()


def write_suite(pytester: pytest.Pytester, bases: list[str], **extra: str) -> None:
    """Goldens are the upper-cased prompt (recorded on ``prod``); ``fleet`` is one model over ``bases``."""
    settings = "\n".join(f"{k} = {v}" for k, v in extra.items())
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false

[tool.llmswap.models.prod]
model = "openai/prod"
api_base = "{bases[0]}"
api_key = "{SECRET}"

[tool.llmswap.models.fleet]
model = "openai/fleet"
api_bases = {json.dumps(bases)}
api_key = "{SECRET}"
{settings}
""")
    pytester.makepyfile(test_words=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="say {{{{ word }}}}", cases={CASES!r})
def test_words(output, case):
    assert output.text == "SAY " + case["word"].upper()
""")


def test_one_candidate_answered_by_both_deployments(pytester: pytest.Pytester, litellm_loaded: object) -> None:
    with chat_server(shout) as a, chat_server(shout) as b:
        write_suite(pytester, [a.url, b.url])
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=20)
        recorded = len(a.seen)
        result = pytester.runpytest("--candidate-model", "fleet", "--llmswap-json", "out.json")
        result.assert_outcomes(passed=20)
        served = (len(a.seen) - recorded, len(b.seen))
    # Every case called once, spread over both replicas (simple-shuffle: all 20 on one has odds 2 ** -19).
    assert sum(served) == 20 and min(served) > 0, served
    assert all(s["headers"].get("authorization") == f"Bearer {SECRET}" for s in b.seen)
    text = (pytester.path / "out.json").read_text()
    out = json.loads(text)
    assert [c["name"] for c in out["candidates"]] == list(out["summaries"]["candidates"]) == ["fleet"]
    assert len(out["cases"]) == 20 and {c["candidate"] for c in out["cases"]} == {"fleet"}
    assert SECRET not in text


@pytest.fixture
def two_servers() -> Iterator[tuple[object, object]]:
    with chat_server(shout) as a, chat_server(shout) as b:
        yield a, b


def fleet(bases: list[str], **entry: object) -> LiteLLMBackend:
    spec = parse_spec("fleet", {"fleet": {"model": "openai/fleet", "api_bases": bases, "api_key": SECRET, **entry}})
    return LiteLLMBackend(spec, concurrency=4, timeout_s=5, retries=3, backoff_s=0.01)


def ask(backend: LiteLLMBackend, n: int) -> list[Response | ModelCallError]:
    return backend.complete([Request(model=backend.spec, messages=(("user", f"q{i}"),)) for i in range(n)])


def test_our_retries_reach_the_other_deployment(litellm_loaded: object) -> None:
    with chat_server(shout, fault_for=lambda p: 503) as down, chat_server(shout) as up:
        backend = fleet([down.url, up.url])
        backend.retries, backend.backoff_s = 20, 0.0  # a call fails only if 21 picks in a row hit `down`
        answers = ask(backend, 20)
    # Each attempt is routed afresh, so a replica that always fails costs retries, not answers.
    assert [a.text for a in answers if isinstance(a, Response)] == [f"Q{i}" for i in range(20)]
    assert len(up.seen) == 20 and len(down.seen) > 0


@pytest.mark.parametrize("fault", [503, "reset"])
def test_a_dead_replica_rests_after_a_few_failed_calls(fault: int | str, litellm_loaded: object) -> None:
    with chat_server(shout, fault_for=lambda p: fault) as dead, chat_server(shout) as up:
        answers = ask(fleet([dead.url, up.url]), 30)
    # litellm's cooldown: after ALLOWED_FAILS failures the dead replica rests; only calls already routed to it
    # (at most the 4 in flight) still fail there. Without it, about half of 30 calls and their retries go there.
    assert all(isinstance(a, Response) for a in answers)
    assert len(dead.seen) <= ALLOWED_FAILS + 1 + 4, len(dead.seen)
    assert len(up.seen) == 30


def test_cooldown_settings_reach_the_router(litellm_loaded: object) -> None:
    with chat_server(shout, fault_for=lambda p: 503) as dead, chat_server(shout) as up:
        answers = ask(fleet([dead.url, up.url], allowed_fails=0, cooldown_time=60), 12)
    assert all(isinstance(a, Response) for a in answers) and len(dead.seen) <= 1 + 4


def test_attempts_are_ours_not_the_routers(litellm_loaded: object) -> None:
    with chat_server(shout, fault_for=lambda p: 500) as down:
        backend = fleet([down.url])
        backend.retries = 2
        (error,) = ask(backend, 1)
    assert len(down.seen) == 3  # our 1 + 2 retries; the Router's and the SDK's retries are off
    assert str(error).startswith("fleet: InternalServerError after 3 attempt(s): ")


def test_retry_after_and_timeouts_hold_through_the_router(litellm_loaded: object) -> None:
    with chat_server(shout, faults=["429:retry-after=1"]) as a, chat_server(shout, delay_s=1.5) as slow:
        backend = fleet([a.url])
        start = time.perf_counter()
        assert [r.text for r in ask(backend, 1)] == ["Q0"]  # type: ignore[union-attr]
        assert time.perf_counter() - start >= 1.0  # the server's Retry-After, not our 10 ms backoff
        slow_backend = LiteLLMBackend(fleet([slow.url]).spec, timeout_s=0.5, retries=1, backoff_s=0.01)
        (error,) = ask(slow_backend, 1)
    assert isinstance(error, ModelCallError)
    assert str(error).startswith("fleet: Timeout after 2 attempt(s)") and "\n" not in str(error)


def test_a_key_echoed_in_an_error_is_masked(litellm_loaded: object) -> None:
    def echo(prompt: str) -> str:
        return "echo_headers"

    with chat_server(shout, fault_for=echo) as a, chat_server(shout, fault_for=echo) as b:
        answers = ask(fleet([a.url, b.url]), 4)
    assert all(isinstance(x, ModelCallError) for x in answers)
    assert len(a.seen) + len(b.seen) == 4  # a 400 is not retried
    text = " ".join(map(str, answers))
    assert SECRET not in text and "***" in text


def test_app_calls_go_through_the_router_too(two_servers: tuple, litellm_loaded: object) -> None:
    a, b = two_servers
    answer = candidate_answer(fleet([a.url, b.url]).spec)
    replies = [answer({"messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(12)]
    assert [r["text"] for r in replies] == [f"Q{i}" for i in range(12)]
    assert len(a.seen) + len(b.seen) == 12 and min(len(a.seen), len(b.seen)) > 0


def test_routing_strategy_is_passed_to_the_router(two_servers: tuple, litellm_loaded: object) -> None:
    a, b = two_servers
    answers = ask(fleet([a.url, b.url], routing_strategy="least-busy"), 8)
    assert all(isinstance(x, Response) for x in answers)
    assert fleet([a.url], routing_strategy="least-busy").spec.param_dict["routing_strategy"] == "least-busy"


@pytest.mark.parametrize("entry, expected", [
    ({"model": "openai/m", "api_bases": []}, "api_bases must be a non-empty list of URLs"),
    ({"model": "openai/m", "api_bases": "http://a/v1"}, "api_bases must be a non-empty list of URLs"),
    ({"model": "openai/m", "api_bases": ["http://a/v1", 3]}, "api_bases must be a non-empty list of URLs"),
    ({"model": "openai/m", "api_bases": ["http://a/v1", "http://a/v1"]}, "lists http://a/v1 more than once"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "api_base": "http://b/v1"}, "api_base (one deployment) or"),
    ({"model": "openai/m", "routing_strategy": "least-busy"}, "routing_strategy needs api_bases"),
    ({"model": "openai/m", "cooldown_time": 5}, "cooldown_time needs api_bases"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "allowed_fails": -1}, "allowed_fails = -1: must be a whole"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "allowed_fails": 1.5}, "allowed_fails = 1.5: must be"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "cooldown_time": 0}, "cooldown_time = 0: must be a number"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "cooldown_time": "5s"}, "cooldown_time = '5s': must be"),
    ({"model": "openai/m", "api_bases": ["http://a/v1"], "routing_strategy": 3}, "routing_strategy must be a string"),
    ({"model": "hf:./m", "api_bases": ["http://a/v1"]}, "(provider/model); this one is 'hf'"),
    ({"model": "echo", "api_bases": ["http://a/v1"]}, "this one is 'echo'"),
])
def test_bad_deployments_are_one_line_spec_errors(entry: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("fleet", {"fleet": entry}, base=Path("/nonexistent"))
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("[tool.llmswap.models.fleet]: ")


def test_unknown_routing_strategy_stops_the_run_with_one_line(pytester: pytest.Pytester,
                                                              litellm_loaded: object) -> None:
    write_suite(pytester, ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"], routing_strategy='"fastest"')
    result = pytester.runpytest("--candidate-model", "fleet")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model 'fleet': Invalid routing_strategy: 'fastest'. Valid options:*"])
