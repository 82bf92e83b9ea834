"""Interception of an application's own LLM calls: litellm and the OpenAI SDK against real local servers.

The application below is written to a file and imported as real code is: it binds ``from litellm import
completion`` at import time, builds OpenAI clients with its own ``base_url``, chains calls, passes tools and
``response_format``, and streams.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_llmswap.intercept import (
    CallRecord,
    Candidate,
    InterceptError,
    Record,
    Replay,
    ReplayMismatch,
    candidate_answer,
    intercept,
    is_patched,
    summarize,
    tool_call_agreement,
)
from pytest_llmswap.types import ModelSpec
from openai_server import chat_server

SECRET = "sk-test-secret-0123456789"

APP = '''
import asyncio, json
from concurrent.futures import ThreadPoolExecutor

import litellm
from litellm import completion
from openai import AsyncOpenAI, OpenAI

TRIAGE_SYSTEM = "Classify the ticket. Answer JSON with a category."
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Order status",
          "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}]
ORDERS = {"A17": "shipped"}


class Support:
    def __init__(self, base_url, api_key):
        self.base_url, self.api_key = base_url, api_key
        self.client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        self.aclient = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    def _triage_messages(self, ticket):
        return [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": "Ticket: " + ticket}]

    def triage(self, ticket):
        r = completion(model="openai/prod-model", messages=self._triage_messages(ticket), api_base=self.base_url,
                       api_key=self.api_key, temperature=0, response_format={"type": "json_object"})
        return json.loads(r.choices[0].message.content)["category"]

    def reply(self, ticket, category):
        messages = [{"role": "user", "content": f"Write a reply to this {category} ticket: {ticket}"}]
        r = self.client.chat.completions.create(model="prod-model", messages=messages, tools=TOOLS, seed=7)
        message = r.choices[0].message
        if message.tool_calls:
            messages.append(message)
            for call in message.tool_calls:
                order = json.loads(call.function.arguments)["order_id"]
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.dumps({"order_id": order, "status": ORDERS.get(order)})})
            r = self.client.chat.completions.create(model="prod-model", messages=messages, tools=TOOLS, seed=7)
        return r.choices[0].message.content

    def handle(self, ticket):
        category = self.triage(ticket)
        return {"category": category, "reply": self.reply(ticket, category)}

    async def ahandle(self, ticket):
        r = await litellm.acompletion(model="openai/prod-model", messages=self._triage_messages(ticket),
                                      api_base=self.base_url, api_key=self.api_key, temperature=0)
        category = json.loads(r.choices[0].message.content)["category"]
        r = await self.aclient.chat.completions.create(
            model="prod-model", messages=[{"role": "user", "content": f"Summarise the {category} ticket: {ticket}"}])
        return {"category": category, "summary": r.choices[0].message.content}

    def stream_sdk(self, ticket):
        stream = self.client.chat.completions.create(
            model="prod-model", stream=True, messages=[{"role": "user", "content": "Stream a reply: " + ticket}])
        return [type(c).__name__ + ":" + (c.choices[0].delta.content or "") for c in stream if c.choices]

    async def astream_litellm(self, ticket):
        stream = await litellm.acompletion(model="openai/prod-model", stream=True, api_base=self.base_url,
                                           api_key=self.api_key,
                                           messages=[{"role": "user", "content": "Stream a reply: " + ticket}])
        return [type(c).__name__ + ":" + (c.choices[0].delta.content or "") async for c in stream
                if c.choices and c.choices[0].delta.content]

    def fan_out(self, tickets):
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(self.triage, tickets))

    def responses_api(self):
        return self.client.responses.create(model="prod-model", input="hi")

    def raw_response(self):
        return self.client.chat.completions.with_raw_response.create(
            model="prod-model", messages=[{"role": "user", "content": "hi"}]).parse()
'''


def incumbent(prompt: str) -> Any:
    """The production model: billing tickets, looks up order A17 before replying."""
    if prompt.startswith("Ticket:"):
        return json.dumps({"category": "billing"})
    if prompt.startswith("Write a reply"):
        return {"content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "lookup_order", "arguments": json.dumps({"order_id": "A17"})}}]}
    if prompt.startswith("{"):
        return f"Your order {json.loads(prompt)['order_id']} has {json.loads(prompt)['status']}."
    return "Thanks for the report, we are on it."


def candidate(prompt: str) -> Any:
    """A cheaper model: calls the ticket a bug and looks up the wrong order."""
    if prompt.startswith("Ticket:"):
        return json.dumps({"category": "bug"})
    if prompt.startswith("Write a reply"):
        return {"content": None, "tool_calls": [{"id": "c9", "type": "function", "function": {
            "name": "lookup_order", "arguments": json.dumps({"order_id": "B2"})}}]}
    return "Sorry about that."


@pytest.fixture(scope="module")
def app_module(tmp_path_factory: pytest.TempPathFactory, litellm_loaded: Any) -> Any:
    path = tmp_path_factory.mktemp("app") / "support_app.py"
    path.write_text(APP)
    spec = importlib.util.spec_from_file_location("support_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["support_app"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["support_app"]


@pytest.fixture
def prod(app_module: Any) -> Any:
    with chat_server(incumbent, model="prod-model-2026-01-01") as server:
        yield server, app_module.Support(server.url, SECRET)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket may connect anywhere: replay must be answered from the recording alone."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def roundtrip(records: list[CallRecord]) -> list[CallRecord]:
    return [CallRecord.from_dict(d) for d in json.loads(json.dumps([r.to_dict() for r in records]))]


def record(app: Any, method: str, *args: Any) -> tuple[Any, list[CallRecord]]:
    with intercept(Record()) as session:
        result = getattr(app, method)(*args)
    return result, roundtrip(session.calls)


def test_record_stores_each_call_once_without_credentials(prod: Any) -> None:
    server, app = prod
    result, calls = record(app, "handle", "Where is my order A17?")
    assert result == {"category": "billing", "reply": "Your order A17 has shipped."}
    assert len(server.seen) == 3 and len(calls) == 3
    assert [c.request["api"] for c in calls] == ["litellm", "openai", "openai"]
    assert calls[0].request["response_format"] == {"type": "json_object"}
    assert calls[0].request["params"] == {"temperature": 0}
    assert calls[1].request["tools"][0]["function"]["name"] == "lookup_order"
    assert calls[1].response["tool_calls"][0]["function"] == {"name": "lookup_order",
                                                               "arguments": '{"order_id": "A17"}'}
    assert calls[1].response["finish_reason"] == "tool_calls"
    assert calls[2].request["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert calls[2].response["text"] == "Your order A17 has shipped."
    assert calls[2].response["model"] == "prod-model-2026-01-01"
    assert all(c.response["latency_s"] > 0 and c.response["usage"]["input_tokens"] > 0 for c in calls)
    stored = json.dumps([c.to_dict() for c in calls])
    assert SECRET not in stored and "127.0.0.1" not in stored
    summary = summarize(calls)
    assert summary["calls"] == 3 and summary["tool_calls"] == 1
    assert summary["input_tokens"] == sum(c.response["usage"]["input_tokens"] for c in calls)


def test_replay_answers_every_call_offline(prod: Any, request: pytest.FixtureRequest) -> None:
    server, app = prod
    result, calls = record(app, "handle", "Where is my order A17?")
    seen = len(server.seen)
    request.getfixturevalue("offline")
    with intercept(Replay(calls)) as session:
        assert type(app)(server.url, SECRET).handle("Where is my order A17?") == result
    assert len(server.seen) == seen
    assert [c.response for c in session.calls] == [c.response for c in calls]
    # The guard holds for new connections (the app's pooled ones are why server.seen is checked too).
    # The SDK wraps the refusal as "Connection error." or, on some of httpx2's connect paths, lets it through.
    with pytest.raises(Exception, match="Connection error|network access during an offline test"):
        type(app)(server.url, SECRET).reply("Where is my order A17?", "billing")


def test_candidate_gets_every_call_and_the_incumbent_none(app_module: Any) -> None:
    with chat_server(incumbent) as prod_server, chat_server(candidate, model="cand-1") as cand_server:
        app = app_module.Support(prod_server.url, SECRET)
        golden_result, golden = record(app, "handle", "Where is my order A17?")
        before = len(prod_server.seen)
        spec = ModelSpec(name="cand", kind="litellm", target="openai/cand-model",
                         params=(("api_base", cand_server.url), ("api_key", "sk-cand-key-000000")))
        with intercept(Candidate(candidate_answer(spec))) as session:
            result = app.handle("Where is my order A17?")
    assert len(prod_server.seen) == before
    assert len(cand_server.seen) == 3 == len(session.calls)
    assert result == {"category": "bug", "reply": "Sorry about that."}
    # The candidate got the app's tools and response format, not a flattened prompt.
    assert cand_server.seen[0]["body"]["response_format"] == {"type": "json_object"}
    assert cand_server.seen[1]["body"]["tools"][0]["function"]["name"] == "lookup_order"
    assert all(c.response["model"] == "cand-1" for c in session.calls)
    assert tool_call_agreement(golden, session.calls) == 0.5  # same tool, other arguments
    assert tool_call_agreement(golden, golden) == 1.0
    assert golden_result != result


def test_changed_prompt_fails_replay_with_one_line(prod: Any, app_module: Any, offline: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [CallRecord({"api": "litellm", "model": "openai/prod-model", "stream": False, "params": {"temperature": 0},
                         "response_format": {"type": "json_object"},
                         "messages": [{"role": "system", "content": app_module.TRIAGE_SYSTEM},
                                      {"role": "user", "content": "Ticket: hi"}]},
                        {"text": '{"category": "billing"}'})]
    _, app = prod
    with intercept(Replay(calls)):
        assert app.triage("hi") == "billing"
    monkeypatch.setattr(app_module, "TRIAGE_SYSTEM", "Classify the ticket into a category.")
    with pytest.raises(ReplayMismatch) as info, intercept(Replay(calls, "pytest --llmswap-record all -k triage")):
        app.triage("hi")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("call 1 (openai/prod-model) does not match the recording: messages[0].content changed")
    assert message.endswith("re-record with: pytest --llmswap-record all -k triage")


def test_unrecorded_and_unused_calls_fail_even_when_the_app_swallows_them(prod: Any, offline: None) -> None:
    server, app = prod
    calls = [CallRecord({"api": "litellm", "model": "m", "stream": False, "messages": []}, {"text": "{}"})]
    with pytest.raises(ReplayMismatch, match=r"^the application made 0 call\(s\), the recording has 1"):
        with intercept(Replay(calls)):
            pass
    with pytest.raises(ReplayMismatch, match=r"^call 1 \(openai/prod-model\) was not recorded"):
        with intercept(Replay([])):
            try:
                app.triage("hi")
            except Exception:  # an application that falls back on any error must not hide the mismatch
                pass
    assert server.seen == []


def test_async_calls_record_and_replay(prod: Any, request: pytest.FixtureRequest) -> None:
    server, app = prod
    with intercept(Record()) as session:
        result = asyncio.run(app.ahandle("App crashes"))
    assert result == {"category": "billing", "summary": "Thanks for the report, we are on it."}
    assert [c.request["api"] for c in session.calls] == ["litellm", "openai"] and len(server.seen) == 2
    request.getfixturevalue("offline")
    with intercept(Replay(roundtrip(session.calls))):
        assert asyncio.run(app.ahandle("App crashes")) == result


def test_streams_record_and_replay_chunk_by_chunk(prod: Any, request: pytest.FixtureRequest) -> None:
    server, app = prod
    pieces = ["Thanks", " for", " the", " report,", " we", " are", " on", " it."]
    sdk, sdk_calls = record(app, "stream_sdk", "slow")
    assert sdk == ["ChatCompletionChunk:"] + [f"ChatCompletionChunk:{p}" for p in pieces] + ["ChatCompletionChunk:"]
    assert sdk_calls[0].response["chunks"] == pieces and sdk_calls[0].response["text"] == "".join(pieces)
    assert sdk_calls[0].request["stream"] is True
    with intercept(Record()) as session:
        lit = asyncio.run(app.astream_litellm("slow"))
    assert lit == [f"ModelResponseStream:{p}" for p in pieces]
    lit_calls = roundtrip(session.calls)
    assert lit_calls[0].response["chunks"] == pieces
    request.getfixturevalue("offline")
    with intercept(Replay(sdk_calls)):
        assert app.stream_sdk("slow") == sdk
    with intercept(Replay(lit_calls)):
        assert asyncio.run(app.astream_litellm("slow")) == lit


def test_calls_from_the_apps_threads_are_intercepted(prod: Any, request: pytest.FixtureRequest) -> None:
    server, app = prod
    result, calls = record(app, "fan_out", ["a", "b", "c"])
    assert result == ["billing"] * 3 and len(calls) == 3
    request.getfixturevalue("offline")
    with intercept(Replay(calls)):
        assert app.fan_out(["c", "a", "b"]) == ["billing"] * 3


def test_responses_api_and_raw_responses_are_refused_with_one_line(prod: Any) -> None:
    server, app = prod
    with pytest.raises(InterceptError, match=r"^client\.responses\.create \(the OpenAI Responses API\) is not "
                                             r"intercepted by pytest-llmswap: call client\.chat\.completions"):
        with intercept(Replay([])):
            app.responses_api()
    with pytest.raises(InterceptError, match=r"^client\.chat\.completions\.with_raw_response / "
                                             r"with_streaming_response is not intercepted"):
        with intercept(Record()):
            app.raw_response()
    assert server.seen == []
    assert app.raw_response().choices[0].message.content  # outside the block the SDK works as before


def test_nothing_is_patched_outside_the_block(app_module: Any) -> None:
    import litellm
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions

    before = (litellm.completion, litellm.acompletion, app_module.completion, Completions.create,
              AsyncCompletions.create)
    with pytest.raises(RuntimeError), intercept(Replay([])):
        with intercept(Record()):
            assert app_module.completion is litellm.completion is not before[0]
            assert is_patched()
        assert is_patched()
        raise RuntimeError("the body failed")
    assert not is_patched()
    assert (litellm.completion, litellm.acompletion, app_module.completion, Completions.create,
            AsyncCompletions.create) == before


def test_a_name_bound_between_blocks_is_patched_in_the_next_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the originals are bound is remembered from block to block; a module that binds one later is seen."""
    import types

    import litellm

    late = types.ModuleType("llmswap_late_binding")
    monkeypatch.setitem(sys.modules, late.__name__, late)
    original = litellm.completion
    with intercept(Record()):
        assert not hasattr(late, "completion")
    late.completion = original  # an existing module's namespace grows: it is read again
    for _ in range(2):  # the second block reuses the remembered scan
        with intercept(Record()):
            assert late.completion is litellm.completion is not original
        assert late.completion is original


def test_local_candidate_answers_in_text_and_says_tools_are_ignored(prod: Any) -> None:
    server, app = prod
    with intercept(Candidate(candidate_answer(ModelSpec(name="echo", kind="echo", target="echo")))) as session:
        assert app.reply("Where is A17?", "billing") == "Write a reply to this billing ticket: Where is A17?"
    assert server.seen == []
    assert session.calls[0].response["note"] == "echo is a local text model: tools ignored"


def test_tool_call_agreement_scores() -> None:
    def run(*calls: list[tuple[str, dict[str, Any]]]) -> list[CallRecord]:
        return [CallRecord({}, {"tool_calls": [{"function": {"name": n, "arguments": json.dumps(a)}} for n, a in c]})
                for c in calls]

    golden = run([("lookup", {"id": 1})], [])
    assert tool_call_agreement(golden, run([("lookup", {"id": 1})], [])) == 1.0
    assert tool_call_agreement(golden, run([("lookup", {"id": 2})], [])) == 0.5
    assert tool_call_agreement(golden, run([("refund", {"id": 1})], [])) == 0.0
    assert tool_call_agreement(golden, run([("lookup", {"id": 1}), ("refund", {})], [])) == 0.5
    assert tool_call_agreement(golden, run([], [("lookup", {"id": 1})])) == 0.0
    assert tool_call_agreement(run([]), run([])) == 1.0
    assert tool_call_agreement(golden, run([("lookup", {"id": 1})])) == 1.0


@pytest.mark.slow
def test_example_app_runs_on_the_embedded_models(offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/app/support.py, unchanged, answered in process by the example teacher and student."""
    path = Path(__file__).parents[1] / "examples" / "app" / "support.py"
    spec = importlib.util.spec_from_file_location("example_support_app", path)
    assert spec and spec.loader
    support = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, support)  # as `import` does: interception finds it there
    spec.loader.exec_module(support)
    ticket = "Hi team, See invoice INV-19494. I cannot log in to my account. Thanks in advance. Cheers, Lee"
    results = {}
    for name in ("teacher", "student"):
        model = ModelSpec(name=name, kind="hf", target=str(path.parents[1] / "models" / name))
        with intercept(Candidate(candidate_answer(model))) as session:
            results[name] = support.handle(ticket)
        assert [c.request["model"] for c in session.calls] == [support.MODEL] * 2
        assert session.summary()["calls"] == 2 and session.summary()["output_tokens"] > 0
    assert results["teacher"]["category"] == results["student"]["category"] == "account"
    assert results["teacher"]["reference"] == "INV-19494"
