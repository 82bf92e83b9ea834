"""Application mode end to end: contracts without a prompt whose test body runs a real application.

The application (``shop.py``, written into the pytester directory) calls the OpenAI SDK, sync and async, with
its own ``base_url`` and key, and litellm with its own ``api_base``; it chains a tool call into a second call
and streams a reply chunk by chunk. Every call goes to ChatServers on 127.0.0.1: the application's own
("prod", the incumbent) and the candidates'.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from openai_server import chat_server

ROOT = Path(__file__).resolve().parents[1]
APP_KEY = "sk-app-secret-4242424242"  # the application's own credential
MODEL_KEY = "sk-model-secret-1717171717"  # the configured models' credential
CASES = [{"id": "shipped", "question": "Where is order 42?"}, {"id": "late", "question": "Why is order 7 late?"}]
CALLS_PER_CASE = 6  # tool call + answer (SDK), category (litellm), French (async SDK), tone (litellm async), reply (stream)
SYSTEM = "You are the shop's support assistant."

APP = '''
"""A shop's support assistant: the OpenAI SDK (sync and async) and litellm, each with its own endpoint."""
import asyncio
import json

import litellm
from openai import AsyncOpenAI, OpenAI

BASE_URL = {url!r}
API_KEY = {key!r}
MODEL = "shop-model"
SYSTEM = {system!r}
ORDERS = {{"42": "shipped", "7": "delayed"}}
TOOLS = [
    {{"type": "function", "function": {{"name": name, "description": name.replace("_", " "),
      "parameters": {{"type": "object", "properties": {{"order_id": {{"type": "string"}}}}, "required": ["order_id"]}}}}}}
    for name in ("lookup_order", "refund_order")
]

client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)


def run_tool(name, args):
    status = ORDERS.get(args["order_id"], "unknown") if name == "lookup_order" else "refunded"
    return {{"order_id": args["order_id"], "status": status}}


def resolve(question):
    """Two chained calls: the model asks for a tool, the app runs it, the model answers with its result."""
    messages = [{{"role": "system", "content": SYSTEM}}, {{"role": "user", "content": "Customer: " + question}}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, temperature=0)
    message = first.choices[0].message
    messages.append(message)
    for call in message.tool_calls or []:
        result = run_tool(call.function.name, json.loads(call.function.arguments))
        messages.append({{"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, temperature=0)
    return [c.function.name for c in message.tool_calls or []], second.choices[0].message.content


def category(answer):
    response = litellm.completion(model="openai/" + MODEL, api_base=BASE_URL, api_key=API_KEY, temperature=0,
                                  max_tokens=8, messages=[{{"role": "user", "content": "Category of: " + answer}}])
    return response.choices[0].message.content


async def extras(answer):
    async with AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0) as aclient:
        french, tone = await asyncio.gather(
            aclient.chat.completions.create(
                model=MODEL, messages=[{{"role": "user", "content": "Translate to French: " + answer}}]),
            litellm.acompletion(model="openai/" + MODEL, api_base=BASE_URL, api_key=API_KEY,
                                messages=[{{"role": "user", "content": "Tone of: " + answer}}]))
    return french.choices[0].message.content, tone.choices[0].message.content


def stream_reply(answer):
    stream = client.chat.completions.create(
        model=MODEL, stream=True, messages=[{{"role": "user", "content": "Reply to the customer: " + answer}}])
    return [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]


def handle(question):
    tools, answer = resolve(question)
    french, tone = asyncio.run(extras(answer))
    pieces = stream_reply(answer)
    return {{"tools": tools, "answer": answer, "category": category(answer), "french": french, "tone": tone,
             "reply": "".join(pieces), "chunks": len(pieces)}}
'''

TEST = '''
import json

import shop
from pytest_llmswap import llm_contract


@llm_contract(cases={cases!r}, output="json", tolerance={tolerance!r}, allow_empty={allow_empty!r})
def test_shop(case):
    value = shop.handle(case["question"])
    with open("values.jsonl", "a") as log:  # what the application produced, run by run
        log.write(json.dumps(value) + "\\n")
    assert value["tools"], "the assistant must look something up"
    return value
'''


GUARD = """
import socket

CONNECT = socket.socket.connect, socket.socket.connect_ex


def refuse(sock, address):
    raise OSError(f"network access in an offline run: {address}")


socket.socket.connect = refuse
socket.socket.connect_ex = refuse


def pytest_unconfigure(config):
    # An in-process run shares the process of the test that started it: the sockets are given back at its end.
    socket.socket.connect, socket.socket.connect_ex = CONNECT
"""


def shop_answer(tool: str = "lookup_order", category: str = "shipping"):
    """A ChatServer answer function for the shop's prompts (the prompt is the request's last message)."""

    def answer(prompt: str) -> Any:
        if prompt.startswith("Customer: "):
            order = re.search(r"\d+", prompt).group()
            return {"content": None, "tool_calls": [{"id": f"call_{order}", "type": "function", "function": {
                "name": tool, "arguments": json.dumps({"order_id": order})}}]}
        if prompt.startswith('{"order_id"'):  # the tool's result
            return f"Your order is {json.loads(prompt)['status']}."
        if prompt.startswith("Category of: "):
            return category
        if prompt.startswith("Translate to French: "):
            return "Votre commande est en route."
        if prompt.startswith("Tone of: "):
            return "neutral"
        if prompt.startswith("Reply to the customer: "):
            return "Thanks for your patience: " + prompt.split(": ", 1)[1] + " Have a nice day."
        raise AssertionError(f"unexpected prompt {prompt!r}")

    return answer


def write_shop(pytester: pytest.Pytester, app_url: str, *, system: str = SYSTEM, tolerance: dict | None = None,
               allow_empty: bool = False, models: dict[str, str] | None = None) -> None:
    """The application, its contract, and ``[tool.llmswap.models]`` entries for ``models`` (name -> url)."""
    entries = "".join(f'\n[tool.llmswap.models.{name}]\nmodel = "openai/{name}-model"\napi_base = "{url}"\n'
                      f'api_key = "{MODEL_KEY}"\n' for name, url in (models or {}).items())
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n" + entries)
    pytester.makepyfile(shop=APP.format(url=app_url, key=APP_KEY, system=system))
    pytester.makepyfile(test_shop=TEST.format(cases=CASES, tolerance=tolerance or {}, allow_empty=allow_empty))


def values(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "values.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def golden_cases(pytester: pytest.Pytester) -> dict[str, Any]:
    data = json.loads((pytester.path / "__llm_goldens__" / "test_shop.json").read_text())
    return data["contracts"]["test_shop"]["cases"]


def record(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest("--llmswap-record", "new", *args)
    result.assert_outcomes(passed=len(CASES))
    return result


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch):
    """``with no_network() as attempts:`` every outgoing connection raises, and is counted."""

    @contextmanager
    def offline() -> Iterator[list[Any]]:
        attempts: list[Any] = []

        def refuse(sock: socket.socket, address: Any) -> None:
            attempts.append(address)
            raise OSError(f"network access in an offline replay: {address}")

        with monkeypatch.context() as patch:
            patch.setattr(socket.socket, "connect", refuse)
            patch.setattr(socket.socket, "connect_ex", refuse)
            yield attempts

    return offline


def auth(seen: dict[str, Any]) -> str | None:
    """The Authorization header a server received."""
    return {k.lower(): v for k, v in seen["headers"].items()}.get("authorization")


def written_files(pytester: pytest.Pytester) -> list[Path]:
    """Every file the plugin wrote: goldens, results, reports, the response store."""
    own = {pytester.path / "shop.py", pytester.path / "test_shop.py", pytester.path / "pyproject.toml"}
    return [p for p in pytester.path.rglob("*") if p.is_file() and p not in own and "__pycache__" not in p.parts]


def test_record_stores_each_call_once_and_replay_runs_offline(pytester, litellm_loaded, no_network):
    with chat_server(shop_answer(), model="shop-model-2026-01-01") as prod:
        write_shop(pytester, prod.url)
        record(pytester, "--llmswap-json", "recorded.json")
        assert len(prod.seen) == CALLS_PER_CASE * len(CASES)  # each call made once
        recorded = values(pytester)
    assert [v["tools"] for v in recorded] == [["lookup_order"]] * 2
    assert recorded[0]["answer"] == "Your order is shipped." and recorded[1]["answer"] == "Your order is delayed."
    assert all(v["chunks"] > 2 for v in recorded)  # the app read the stream chunk by chunk

    cases = golden_cases(pytester)
    assert set(cases) == {"shipped", "late"}
    sample = cases["shipped"]["samples"][0]
    assert json.loads(sample["text"]) == recorded[0]  # the value the test returned
    calls = sample["calls"]
    assert [c["request"]["api"] for c in calls].count("litellm") == 2 and len(calls) == CALLS_PER_CASE
    first, second = calls[0], calls[1]
    assert first["request"]["messages"][0] == {"role": "system", "content": SYSTEM}
    assert [t["function"]["name"] for t in first["request"]["tools"]] == ["lookup_order", "refund_order"]
    assert first["request"]["params"] == {"temperature": 0}
    assert first["response"]["tool_calls"][0]["function"] == {"name": "lookup_order",
                                                             "arguments": '{"order_id": "42"}'}
    assert first["response"]["finish_reason"] == "tool_calls"
    assert second["request"]["messages"][-1] == {"role": "tool", "tool_call_id": "call_42",
                                                 "content": '{"order_id": "42", "status": "shipped"}'}
    assert second["response"]["text"] == "Your order is shipped."
    assert second["response"]["usage"]["input_tokens"] > 0
    streamed = next(c for c in calls if c["request"]["stream"])
    assert len(streamed["response"]["chunks"]) == recorded[0]["chunks"]
    assert "".join(streamed["response"]["chunks"]) == recorded[0]["reply"]
    category = next(c for c in calls if c["request"]["messages"][-1]["content"].startswith("Category"))
    assert category["request"]["params"] == {"temperature": 0, "max_tokens": 8}
    assert {c["response"]["model"] for c in calls} == {"shop-model-2026-01-01"}

    # The keys were sent to the server, and never written anywhere.
    assert {auth(s) for s in prod.seen} == {f"Bearer {APP_KEY}"}
    for path in written_files(pytester):
        data = path.read_bytes()
        for secret in (APP_KEY.encode(), b"Authorization", b"authorization", b"api_key", b"Bearer"):
            assert secret not in data, (path, secret)

    # Replay: the server is gone and every connection raises; the application runs on the recording.
    with no_network() as attempts:
        result = pytester.runpytest("--llmswap-json", "replayed.json")
    result.assert_outcomes(passed=len(CASES))
    assert attempts == []
    assert values(pytester) == recorded  # same values, the stream again in as many chunks
    out = json.loads((pytester.path / "replayed.json").read_text())
    assert {c["notes"]["calls"].split(",")[0] for c in out["cases"]} == {f"{CALLS_PER_CASE} call(s)"}


def test_record_goes_to_the_incumbent_model_when_given(pytester, litellm_loaded):
    with chat_server(shop_answer()) as app, chat_server(shop_answer(), model="prod-2026") as prod:
        write_shop(pytester, app.url, models={"prod": prod.url})
        record(pytester, "--incumbent-model", "prod")
        assert app.seen == [] and len(prod.seen) == CALLS_PER_CASE * len(CASES)
        assert {s["body"]["model"] for s in prod.seen} == {"prod-model"}
        assert {auth(s) for s in prod.seen} == {f"Bearer {MODEL_KEY}"}
        assert prod.seen[0]["body"]["tools"][0]["function"]["name"] == "lookup_order"  # tools kept
    sample = golden_cases(pytester)["late"]["samples"][0]
    assert {c["response"]["model"] for c in sample["calls"]} == {"prod-2026"}
    assert json.loads(sample["text"])["answer"] == "Your order is delayed."
    for path in written_files(pytester):
        assert MODEL_KEY.encode() not in path.read_bytes() and APP_KEY.encode() not in path.read_bytes(), path


@pytest.mark.slow  # three inner sessions, about 5 s
def test_changed_prompt_fails_replay_with_one_line(pytester, litellm_loaded, no_network):
    with chat_server(shop_answer()) as prod:
        write_shop(pytester, prod.url)
        record(pytester)
    write_shop(pytester, prod.url, system="You are the shop's terse support assistant.")
    with no_network() as attempts:
        result = pytester.runpytest()
    result.assert_outcomes(failed=len(CASES))
    assert attempts == []
    start = result.outlines.index(next(line for line in result.outlines if "= FAILURES =" in line))
    end = next(i for i in range(start + 1, len(result.outlines)) if result.outlines[i].startswith("="))
    lines = [line for line in result.outlines[start + 1:end] if line.strip() and not line.startswith("_")]
    # One line per item, with no traceback of the application or the plugin: the call, the change, the command.
    assert len(lines) == len(CASES)
    for line in lines:
        assert line.startswith("call 1 (shop-model) does not match the recording: messages[0].content changed: "
                               "recorded \"You are the shop's support assistant.\", now \"You are the shop's terse")
        assert line.endswith("; re-record with: pytest --llmswap-record all test_shop.py::test_shop")
    # The command it names re-records the changed calls.
    with chat_server(shop_answer()) as prod2:
        write_shop(pytester, prod2.url, system="You are the shop's terse support assistant.")
        command = lines[0].split("re-record with: pytest ")[1].split()
        pytester.runpytest(*command).assert_outcomes(passed=len(CASES))
        assert len(prod2.seen) == CALLS_PER_CASE * len(CASES)
    pytester.runpytest().assert_outcomes(passed=len(CASES))


def failure_lines(result: pytest.RunResult) -> list[str]:
    """The text of the FAILURES section, without the items' headers."""
    start = result.outlines.index(next(line for line in result.outlines if "= FAILURES =" in line))
    end = next(i for i in range(start + 1, len(result.outlines)) if result.outlines[i].startswith("="))
    return [line for line in result.outlines[start + 1:end] if line.strip() and not line.startswith("_")]


def test_candidate_run_on_a_changed_application_fails_before_calling_the_candidate(pytester, litellm_loaded):
    with chat_server(shop_answer()) as prod, chat_server(shop_answer()) as cand:
        write_shop(pytester, prod.url, models={"cand": cand.url})
        record(pytester, "--incumbent-model", "cand")
        cand.seen.clear()
        write_shop(pytester, prod.url, models={"cand": cand.url}, system="Be terse.")
        result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json", "out.json")
        result.assert_outcomes(failed=len(CASES))
        # The goldens no longer describe the application: comparing the candidate with them would be noise.
        assert cand.seen == [] and prod.seen == []
    lines = failure_lines(result)
    assert len(lines) == len(CASES)
    for line in lines:
        assert line.startswith("call 1 (shop-model) does not match the recording: messages[0].content changed")
        assert line.endswith("re-record with: pytest --llmswap-record all test_shop.py::test_shop")
    out = json.loads((pytester.path / "out.json").read_text())
    assert all(c["call_error"] is None and c["failure"] == lines[0] for c in out["cases"])


@pytest.mark.slow  # three inner sessions, about 5 s
def test_candidates_get_every_call_and_a_different_tool_drifts(pytester, litellm_loaded):
    with chat_server(shop_answer()) as prod, chat_server(shop_answer()) as same, \
            chat_server(shop_answer(tool="refund_order")) as other:
        write_shop(pytester, prod.url, tolerance={"tools": 0.9}, models={"same": same.url, "other": other.url})
        record(pytester)
        recorded = len(prod.seen)
        values(pytester)
        result = pytester.runpytest("--candidate-model", "same", "--candidate-model", "other",
                                    "--llmswap-json", "out.json")
        result.assert_outcomes(passed=2, failed=2)
        assert len(prod.seen) == recorded  # nothing reached the application's own endpoint
        for server, name in ((same, "same"), (other, "other")):
            # Each distinct request once: "other" refunds both orders, so its last four requests are the
            # same for both cases, and the second case gets them from the response store.
            assert len(server.seen) == len(set(server.prompts())) == (12 if name == "same" else 8)
            assert {s["body"]["model"] for s in server.seen} == {f"{name}-model"}
            assert {auth(s) for s in server.seen} == {f"Bearer {MODEL_KEY}"}
            assert sum(bool(s["body"].get("tools")) for s in server.seen) == 2 * len(CASES)  # tools kept
            assert sum(bool(s["body"].get("stream")) for s in server.seen) == 0  # answered whole, streamed here
        seen = values(pytester)
    # The golden replays (once per case) and each candidate's runs; the stream reached the application chunk
    # by chunk from each candidate too.
    assert len(seen) == 6 and all(v["chunks"] > 2 for v in seen)
    assert sorted(v["tools"][0] for v in seen) == ["lookup_order"] * 4 + ["refund_order"] * 2
    out = json.loads((pytester.path / "out.json").read_text())
    by = {(c["candidate"], c["case_id"]): c for c in out["cases"]}
    for case_id in ("shipped", "late"):
        assert by["same", case_id]["metrics"]["tools"] == 1.0 and by["same", case_id]["passed"]
        other_case = by["other", case_id]
        assert other_case["metrics"]["tools"] < 1 and not other_case["passed"]
        assert "tools" in other_case["exceeded_metrics"] and other_case["call_error"] is None
        assert other_case["candidate_passed"]  # the checks passed: only the tool drift breaks the contract
        assert len(other_case["output"]["calls"]) == CALLS_PER_CASE
    summaries = out["summaries"]["candidates"]
    assert summaries["same"]["metrics"]["tools"]["mean"] == 1.0
    assert summaries["other"]["metrics"]["tools"]["mean"] < 1
    result.stdout.fnmatch_lines(["*_ test_shop[[]shipped-other[]] _*", "drift beyond tolerance: tools 0.000 < 0.9"])
    # Candidate answers are kept in the response store: a rerun calls nothing.
    with chat_server(shop_answer()) as gone:
        pytester.runpytest("--candidate-model", "same").assert_outcomes(passed=2)
        assert gone.seen == []
    assert len(same.seen) == CALLS_PER_CASE * len(CASES)


@pytest.mark.slow  # three inner sessions, about 5 s
def test_failed_candidate_call_is_a_failed_call_not_a_check_failure(pytester, litellm_loaded):
    def fault(prompt: str) -> int | None:
        return 500 if prompt.startswith("Category of: ") and "delayed" in prompt else None

    with chat_server(shop_answer()) as prod, chat_server(shop_answer(), fault_for=fault) as cand:
        write_shop(pytester, prod.url, models={"cand": cand.url})
        record(pytester)
        result = pytester.runpytest("--candidate-model", "cand", "--llmswap-retries", "0",
                                    "--llmswap-json", "out.json")
        result.assert_outcomes(passed=1, failed=1)
    out = json.loads((pytester.path / "out.json").read_text())
    by = {c["case_id"]: c for c in out["cases"]}
    assert by["shipped"]["passed"] and by["shipped"]["call_error"] is None
    late = by["late"]
    assert late["call_error"].startswith("cand: ") and "500" in late["call_error"]
    assert late["failure"].startswith("model call failed: cand: ")
    assert late["check_message"] is None and not late["passed"]
    assert out["summaries"]["candidates"]["cand"]["failed_calls"] == 1
    assert out["summaries"]["verdicts"]["cand"]["verdict"] != "drop-in"
    result.stdout.fnmatch_lines(["*_ test_shop[[]late-cand[]] _*", "model call failed: cand: *500*"])


@pytest.mark.slow  # three inner sessions, about 5 s
def test_empty_candidate_answer_is_a_failed_call_unless_allow_empty(pytester, litellm_loaded):
    with chat_server(shop_answer()) as prod, chat_server(shop_answer(category="")) as cand:
        write_shop(pytester, prod.url, models={"cand": cand.url})
        record(pytester)
        values(pytester)
        # No retries: an empty answer is retried like the other paths (tests/test_secrets.py), not the point here.
        result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json", "out.json", "--llmswap-retries", "0")
        result.assert_outcomes(failed=2)
        out = json.loads((pytester.path / "out.json").read_text())
        for case in out["cases"]:
            assert "empty answer" in case["call_error"] and "allow_empty=True" in case["call_error"]
            assert case["check_message"] is None
        # Only the golden replays ran to the end: the candidate's empty answer failed the call in the app.
        assert [v["category"] for v in values(pytester)] == ["shipping", "shipping"]
        # With allow_empty the empty answer is an answer: the application gets it and its value is judged.
        write_shop(pytester, prod.url, models={"cand": cand.url}, allow_empty=True)
        result = pytester.runpytest("--candidate-model", "cand", "--llmswap-json", "out.json")
        result.assert_outcomes(passed=2)
    out = json.loads((pytester.path / "out.json").read_text())
    assert all(c["call_error"] is None and json.loads(c["output"]["text"])["category"] == "" for c in out["cases"])
    assert [v["category"] for v in values(pytester)] == ["shipping", "", "shipping", ""]


@pytest.mark.slow(seconds=10)
def test_example_app_replays_offline_and_runs_on_the_student(pytester, litellm_loaded):
    pytest.importorskip("transformers")
    shutil.copytree(ROOT / "examples" / "app", pytester.path / "app")
    shutil.copytree(ROOT / "examples" / "data", pytester.path / "data")
    pytester.makefile(".toml", pyproject=f'''
[tool.llmswap]
semantic = false

[tool.llmswap.models.student]
model = "hf:{ROOT / "examples" / "models" / "student"}"
gpu_hour_usd = 0.40
''')
    pytester.makeconftest(GUARD)  # the socket guard is the runs' conftest
    goldens = json.loads((pytester.path / "app" / "__llm_goldens__" / "test_support_app.json").read_text())
    # The replay loads no model: in this process (litellm is loaded once for it). The student's run is a subprocess.
    replay = pytester.runpytest_inprocess("app", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=len(goldens["contracts"]["test_support_app"]["cases"]))
    # Three of the tickets on the student (each case is two calls to a local model, one at a time).
    picked = ["billing-001", "account-005", "ambiguous-001"]
    result = pytester.runpytest_subprocess("app", "-p", "no:cacheprovider", "--candidate-model", "student",
                                           "-k", " or ".join(picked), "--llmswap-json", "out.json")
    result.assert_outcomes(passed=2, failed=1)
    out = json.loads((pytester.path / "out.json").read_text())
    by = {c["case_id"]: c for c in out["cases"]}
    assert set(by) == set(picked)
    for case in by.values():
        assert case["candidate"] == "student" and case["call_error"] is None and case["output"]["model"] == "student"
        assert case["notes"]["calls"].startswith("2 call(s)")
        assert [c["request"]["model"] for c in case["output"]["calls"]] == ["openai/gpt-4o-mini"] * 2
    # The student reads the ambiguous ticket's category differently: the category tolerance breaks.
    assert by["ambiguous-001"]["metrics"]["fields"] < 1 and by["ambiguous-001"]["exceeded"]
    assert by["billing-001"]["passed"] and by["account-005"]["passed"]


def late_fails_to_record(pytester: pytest.Pytester, answer: Any, fault: Any, mode: str, message: str) -> None:
    """Record with ``mode`` against a server answering with ``answer`` and ``fault``: case "late" fails with
    ``message`` and gets no golden; "shipped" keeps its own."""
    with chat_server(answer, fault_for=fault) as prod:
        write_shop(pytester, prod.url)
        result = pytester.runpytest("--llmswap-record", mode)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"recording failed: {message}"])
    assert list(golden_cases(pytester)) == ["shipped"]


@pytest.mark.slow  # four inner sessions against live servers
def test_recording_through_the_applications_own_client_keeps_no_failed_or_empty_call(pytester, litellm_loaded):
    """Without --incumbent-model the application's own client makes the calls; a failed or empty one is never a golden."""
    late = "delayed"  # in the prompts of case "late" only
    late_fails_to_record(pytester, shop_answer(),
                         lambda p: 500 if p.startswith("Category of: ") and late in p else None,
                         "new", "*: the call failed: *500*")
    # "late" again; "shipped" replays
    late_fails_to_record(pytester, shop_answer(category=""), None, "new", "*empty answer*allow_empty=True")
    # The reply's stream is cut halfway; `all`, or the reply kept by the run above would answer it.
    late_fails_to_record(pytester, shop_answer(),
                         lambda p: "stream_reset" if p.startswith("Reply to the customer: ") and late in p else None,
                         "all", "*: the call failed: *")
    # The cut stream was not kept over the whole reply kept by the second run: "late" now records it whole.
    with chat_server(shop_answer()) as prod:
        write_shop(pytester, prod.url)
        record(pytester)
    reply = json.loads(golden_cases(pytester)["late"]["samples"][0]["text"])["reply"]
    assert reply == "Thanks for your patience: Your order is delayed. Have a nice day."


@pytest.mark.slow  # four inner sessions against live servers
@pytest.mark.parametrize("incumbent", [False, True], ids=["own-client", "incumbent-model"])
def test_a_recording_killed_before_its_goldens_are_written_calls_nothing_again(pytester, litellm_loaded, incumbent):
    """Goldens are written as the run ends; the calls are kept as they arrive. Removing the golden file after a
    run leaves what a kill before that point leaves: the response store."""
    with chat_server(shop_answer()) as app, chat_server(shop_answer(), model="prod-2026") as prod:
        server = prod if incumbent else app
        write_shop(pytester, app.url, models={"prod": prod.url})
        args = ("--llmswap-samples", "2", *(("--incumbent-model", "prod") if incumbent else ()))
        record(pytester, *args)
        assert len(server.seen) == 2 * CALLS_PER_CASE * len(CASES)  # each sample makes its own calls
        first = golden_cases(pytester)
        (pytester.path / "__llm_goldens__" / "test_shop.json").unlink()
        record(pytester, *args)
        assert len(server.seen) == 2 * CALLS_PER_CASE * len(CASES)  # nothing called again
        again = golden_cases(pytester)
        assert [[s["calls"] for s in again[c]["samples"]] for c in again] == \
            [[s["calls"] for s in first[c]["samples"]] for c in first]
        record(pytester, "--llmswap-record", "all", *args)  # `all` calls again, every sample
        assert len(server.seen) == 4 * CALLS_PER_CASE * len(CASES)


NETWORK_LOG = '''
import socket


def refuse(*args, **kwargs):
    with open("network.log", "a") as log:
        log.write(repr(args[:2]) + "\\n")
    raise OSError("network access during collection")


socket.getaddrinfo = refuse
socket.socket.connect = refuse
'''


@pytest.mark.slow(seconds=5)
def test_an_application_importing_litellm_under_the_plugin_never_fetches_the_price_map(pytester, monkeypatch):
    """litellm fetches its price map on import unless told not to; the plugin tells it before any test module loads."""
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    pytester.makeconftest(NETWORK_LOG)
    pytester.makepyfile(test_app='''
import litellm  # at collection, as applications do


def test_imported():
    assert litellm.completion
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "network.log").exists()
    assert "cost map" not in result.stdout.str() + result.stderr.str()


def test_export_turns_every_recorded_call_into_a_chat_row(pytester, litellm_loaded, capsys):
    from pytest_llmswap.cli import main

    with chat_server(shop_answer()) as prod:
        write_shop(pytester, prod.url)
        record(pytester)
    out = pytester.path / "train.jsonl"
    assert main(["export", "--goldens", str(pytester.path), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == CALLS_PER_CASE * len(CASES)
    first, second = rows[0], rows[1]
    assert first["metadata"] == {"contract": "test_shop.py::test_shop", "case_id": "late", "call": 1, "samples": 1}
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert [t["function"]["name"] for t in first["tools"]] == ["lookup_order", "refund_order"]
    answer = first["messages"][-1]
    assert answer["role"] == "assistant" and answer["content"] is None
    assert answer["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": '{"order_id": "7"}'}
    assert second["messages"][-2]["role"] == "tool"
    assert second["messages"][-1] == {"role": "assistant", "content": "Your order is delayed."}
    # --passed-only drops every call of a sample whose checks failed.
    path = pytester.path / "__llm_goldens__" / "test_shop.json"
    data = json.loads(path.read_text())
    data["contracts"]["test_shop"]["cases"]["late"]["samples"][0]["passed"] = False
    path.write_text(json.dumps(data))
    assert main(["export", "--goldens", str(pytester.path), "-o", str(out), "--passed-only"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == CALLS_PER_CASE and {r["metadata"]["case_id"] for r in rows} == {"shipped"}
