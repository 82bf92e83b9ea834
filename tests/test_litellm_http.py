"""The litellm path against real OpenAI-compatible HTTP servers on 127.0.0.1."""

import json

import pytest

from openai_server import chat_server
from pytest_llmswap.models.litellm_backend import LiteLLMBackend
from pytest_llmswap.types import ModelCallError, ModelSpec, Request, Response

SECRET = "sk-test-secret-value-1234567890"
CASES = [{"id": f"t{i}", "ticket": t} for i, t in enumerate(
    ["refund my invoice", "app crashes on login", "change my email", "invoice charged twice",
     "crash when saving", "delete my account"])]


def triage(prompt: str) -> str:
    text = prompt.lower()
    category = "billing" if "invoice" in text else "bug" if "crash" in text else "account"
    return json.dumps({"category": category, "priority": "high" if "twice" in text or "login" in text else "low"})


def sloppy_triage(prompt: str) -> str:
    # A cousin: right on most tickets, wrong category on crashes, and it words priorities differently.
    answer = json.loads(triage(prompt))
    if answer["category"] == "bug":
        answer["category"] = "account"
    return json.dumps(answer, indent=1)


def write_suite(pytester: pytest.Pytester, incumbent_url: str, candidate_url: str, **extra: str) -> None:
    settings = "\n".join(f"{k} = {v}" for k, v in extra.items())
    pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false

[tool.llmswap.models.prod]
model = "openai/prod-model"
api_base = "{incumbent_url}"
api_key = "{SECRET}"
temperature = 0

[tool.llmswap.models.cheap]
model = "openai/cheap-model"
api_base = "{candidate_url}"
api_key = "{SECRET}"
input_per_mtok = 100.0
output_per_mtok = 200.0
{settings}
""")
    pytester.makepyfile(test_triage=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Triage: {{{{ ticket }}}}", cases={CASES!r}, output="json",
              tolerance={{"fields": ["category"]}}, calls_per_month=1000)
def test_triage(output, case):
    if "crash" in case["ticket"]:
        assert output.json["category"] == "bug"
    assert output.json["priority"] in {{"low", "high"}}
""")


def test_record_on_incumbent_then_candidate_flips_and_drift(pytester, litellm_loaded):
    with chat_server(triage, model="prod-model-2026-01-01") as prod, chat_server(sloppy_triage) as cheap:
        write_suite(pytester, prod.url, cheap.url)
        rec = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new")
        rec.assert_outcomes(passed=6)
        assert len(prod.seen) == 6
        headers = {k.lower(): v for k, v in prod.seen[0]["headers"].items()}
        assert headers["authorization"] == f"Bearer {SECRET}"  # the key was used...
        result = pytester.runpytest("--candidate-model", "cheap", "--llmswap-json", "out.json",
                                    "--llmswap-report", "report.html")
        result.assert_outcomes(passed=4, failed=2)
        assert len(cheap.seen) == 6
    golden_text = (pytester.path / "__llm_goldens__" / "test_triage.json").read_text()
    golden = json.loads(golden_text)["contracts"]["test_triage"]["cases"]["t0"]
    assert golden["model"] == "prod-model-2026-01-01"  # the resolved, dated id
    assert golden["params"] == {"api_base": prod.url, "temperature": 0}
    out = json.loads((pytester.path / "out.json").read_text())
    summary = out["summaries"]["candidates"]["cheap"]
    assert summary["regressions"] == 2 and summary["improvements"] == 0
    assert 0 < summary["metrics"]["edit"]["mean"] < 1 and summary["metrics"]["exact"]["mean"] == 0
    assert summary["metrics"]["fields"]["mean"] == pytest.approx((4 * 1.0 + 2 * 0.5) / 6)
    # Configured prices: 100 and 200 USD per million input and output tokens.
    usages = [c["output"]["usage"] for c in out["cases"]]
    expected = sum(u["input_tokens"] * 100 + u["output_tokens"] * 200 for u in usages) / 1e6 / len(usages)
    assert summary["usage"]["cost_per_call"] == pytest.approx(expected)
    assert out["candidates"][0]["cost_basis"].startswith("configured token prices ($100 in, $200 out")
    result.stdout.fnmatch_lines(["cheap: *", "  pass rate 66.7%: 4 of 6 cases passed (incumbent 100.0%); checks passed 4, 2 beyond tolerance, 2 regressions*"])
    # ...and never written anywhere.
    for path in [pytester.path / "out.json", pytester.path / "report.html", *pytester.path.rglob(".llmswap_cache/**/*.json")]:
        assert SECRET not in path.read_text(), path
    assert SECRET not in golden_text and SECRET not in result.stdout.str()


def test_cached_responses_make_a_rerun_call_nothing(pytester, litellm_loaded):
    with chat_server(triage) as prod, chat_server(sloppy_triage) as cheap:
        write_suite(pytester, prod.url, cheap.url)
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new")
        pytester.runpytest("--candidate-model", "cheap")
        pytester.runpytest("--candidate-model", "cheap").assert_outcomes(passed=4, failed=2)
        assert len(cheap.seen) == 6
        pytester.runpytest("--candidate-model", "cheap", "--llmswap-no-cache").assert_outcomes(passed=4, failed=2)
        assert len(cheap.seen) == 12
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "all")
        assert len(prod.seen) == 12  # re-recording ignores earlier runs' cache


def test_requests_run_concurrently_before_the_first_test(pytester, litellm_loaded):
    with chat_server(triage, gather=3) as prod, chat_server(triage) as cheap:
        write_suite(pytester, prod.url, cheap.url)
        result = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new",
                                    "--llmswap-concurrency", "3")
        result.assert_outcomes(passed=6)
        assert prod.max_in_flight == 3


def test_transient_errors_are_retried(litellm_loaded):
    with chat_server(triage, faults=[500, 429]) as server:
        spec = ModelSpec(name="s", kind="litellm", target="openai/m",
                         params=(("api_base", server.url), ("api_key", SECRET)))
        backend = LiteLLMBackend(spec, retries=3, backoff_s=0.01)
        [answer] = backend.complete([Request(spec, (("user", "refund my invoice"),))])
    assert isinstance(answer, Response) and json.loads(answer.text)["category"] == "billing"
    assert len(server.seen) == 3


def test_errors_after_retries_and_timeouts_become_model_call_errors(litellm_loaded):
    with chat_server(triage, faults=[500, 500, 500]) as server:
        spec = ModelSpec(name="s", kind="litellm", target="openai/m",
                         params=(("api_base", server.url), ("api_key", SECRET)))
        [answer] = LiteLLMBackend(spec, retries=1, backoff_s=0.01).complete([Request(spec, (("user", "x"),))])
        assert isinstance(answer, ModelCallError) and "after 2 attempt(s)" in str(answer)
        assert len(server.seen) == 2
    with chat_server(triage, delay_s=2.0) as server:
        spec = ModelSpec(name="s", kind="litellm", target="openai/m",
                         params=(("api_base", server.url), ("api_key", SECRET)))
        [answer] = LiteLLMBackend(spec, retries=0, timeout_s=0.3).complete([Request(spec, (("user", "x"),))])
        assert isinstance(answer, ModelCallError) and "Timeout" in str(answer)
    assert SECRET not in str(answer)


def test_mock_response_through_litellm(litellm_loaded):
    spec = ModelSpec(name="m", kind="litellm", target="openai/gpt-4o-mini",
                     params=(("mock_response", '{"category": "bug"}'),))
    answers = LiteLLMBackend(spec).complete([Request(spec, (("user", f"ticket {i}"),)) for i in range(20)])
    assert all(isinstance(a, Response) and a.json == {"category": "bug"} for a in answers)
    assert answers[0].cost_usd is not None and answers[0].cost_usd > 0  # litellm's bundled price table
    assert answers[0].usage.output_tokens > 0


@pytest.mark.slow(seconds=12)
def test_xdist_workers_share_one_set_of_calls(pytester):
    pytest.importorskip("xdist")
    with chat_server(triage) as prod, chat_server(sloppy_triage) as cheap:
        write_suite(pytester, prod.url, cheap.url)
        result = pytester.runpytest_subprocess("-n", "2", "--incumbent-model", "prod", "--llmswap-record", "all",
                                               "--candidate-model", "cheap", "--llmswap-json", "out.json")
        # Each worker plans every request; the first executes them, the other finds them in the cache.
        assert len(prod.seen) == 6 and len(cheap.seen) == 6
    result.assert_outcomes(passed=10, failed=2)
    out = json.loads((pytester.path / "out.json").read_text())
    assert out["summaries"]["candidates"]["cheap"]["regressions"] == 2


FAULTS = ["429", "429:retry-after=0", "500", "503", "timeout", "reset", "malformed_json", "no_choices",
          "empty_choices", "html", "empty_body", "empty_content", "null_content"]


def backend_for(server, retries: int = 2, **params) -> tuple[LiteLLMBackend, ModelSpec]:
    spec = ModelSpec(name="s", kind="litellm", target="openai/m",
                     params=(("api_base", server.url), ("api_key", SECRET), *params.items()))
    return LiteLLMBackend(spec, retries=retries, backoff_s=0.01, timeout_s=0.5), spec


@pytest.mark.parametrize("fault", FAULTS)
def test_each_transient_fault_is_retried(litellm_loaded, fault):
    with chat_server(triage, faults=[fault]) as server:
        backend, spec = backend_for(server)
        [answer] = backend.complete([Request(spec, (("user", "refund my invoice"),))])
        assert isinstance(answer, Response) and json.loads(answer.text)["category"] == "billing"
        assert len(server.seen) == 2


@pytest.mark.parametrize("fault", FAULTS)
def test_each_permanent_fault_is_one_redacted_line(litellm_loaded, fault):
    with chat_server(triage, fault_for=lambda p: fault) as server:
        backend, spec = backend_for(server, retries=1)
        [answer] = backend.complete([Request(spec, (("user", "x"),))])
        assert isinstance(answer, ModelCallError) and len(server.seen) == 2
    message = str(answer)
    assert message.startswith("s: ") and "after 2 attempt(s)" in message and "\n" not in message
    assert SECRET not in message


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(litellm_loaded, status):
    with chat_server(triage, fault_for=lambda p: status) as server:
        backend, spec = backend_for(server)
        [answer] = backend.complete([Request(spec, (("user", "x"),))])
        assert isinstance(answer, ModelCallError) and len(server.seen) == 1


def test_retry_after_is_followed_and_capped_by_the_timeout(litellm_loaded, monkeypatch):
    import asyncio

    from pytest_llmswap.models import litellm_backend

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float, *args):
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(litellm_backend.asyncio, "sleep", record)
    date = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past: retry at once
    with chat_server(triage, faults=["429:retry-after=0.25", "429:retry-after=3600", f"429:retry-after={date}",
                                     "429"]) as server:
        backend, spec = backend_for(server, retries=4)
        [answer] = backend.complete([Request(spec, (("user", "x"),))])
    assert isinstance(answer, Response)
    assert waits[:3] == [0.25, 0.5, 0.0]  # Retry-After; capped by the 0.5 s timeout; an HTTP date
    assert 0.08 <= waits[3] <= 0.16  # no Retry-After: exponential backoff (0.01 * 2**3) with jitter


def test_an_extra_headers_key_echoed_in_an_error_is_masked(litellm_loaded):
    with chat_server(triage, fault_for=lambda p: "echo_headers") as server:
        backend, spec = backend_for(server, extra_headers={"X-Team-Key": "plain-team-key-777"})
        [answer] = backend.complete([Request(spec, (("user", "x"),))])
        sent = {k.lower(): v for k, v in server.seen[0]["headers"].items()}
        assert sent["x-team-key"] == "plain-team-key-777"  # sent, and echoed back in the error...
    assert isinstance(answer, ModelCallError) and "x-team-key" in str(answer).lower()
    assert "plain-team-key-777" not in str(answer) and SECRET not in str(answer)


def test_empty_answer_allowed_when_the_request_says_so(litellm_loaded):
    with chat_server(lambda p: "") as server:
        backend, spec = backend_for(server)
        [answer] = backend.complete([Request(spec, (("user", "x"),), allow_empty=True)])
    assert isinstance(answer, Response) and answer.text == "" and len(server.seen) == 1


def test_the_server_streams_and_returns_tool_calls(litellm_loaded):
    """The test server speaks SSE and tool calls, as real providers do (used by application-call tests)."""
    import asyncio

    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"id": 7}'}}

    async def stream(url: str) -> tuple[str, str]:
        chunks = [c async for c in await litellm_loaded.acompletion(
            model="openai/m", api_base=url, api_key=SECRET, stream=True, messages=[{"role": "user", "content": "a b c"}])]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks[-1].choices[0].finish_reason

    with chat_server(lambda p: f"you said {p}") as server:
        assert asyncio.run(stream(server.url)) == ("you said a b c", "stop")
    with chat_server(lambda p: {"content": None, "tool_calls": [call]}) as server:
        raw = litellm_loaded.completion(model="openai/m", api_base=server.url, api_key=SECRET,
                                        messages=[{"role": "user", "content": "x"}])
    [tool] = raw.choices[0].message.tool_calls
    assert tool.function.name == "lookup" and json.loads(tool.function.arguments) == {"id": 7}


def test_the_backoff_option_sets_the_first_wait_and_doubles(pytester):
    # --llmswap-backoff reaches the backend a run builds; waits are backoff * 2 ** (attempt - 1), up to twice that
    # with jitter, and a server's Retry-After would win.
    from pytest_llmswap.models.executor import make_backend
    from pytest_llmswap.options import build_options

    config = pytester.parseconfig("--candidate-model", "echo", "--llmswap-backoff", "0.25")
    execution = build_options(config, "run").execution
    assert execution.backoff_s == 0.25
    backend = make_backend(ModelSpec(name="s", kind="litellm", target="openai/m"), execution)
    waits = [backend._retry_wait(RuntimeError("500"), attempt) for attempt in (1, 2, 3) for _ in range(20)]
    assert all(0.25 <= w <= 0.5 for w in waits[:20]) and all(1.0 <= w <= 2.0 for w in waits[40:])
