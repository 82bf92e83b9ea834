"""The executor and its response store: every answer persisted as it arrives, models called concurrently."""

from __future__ import annotations

import threading

import pytest

from openai_server import chat_server
from pytest_llmswap.files import OutputWriteError
from pytest_llmswap.models.cache import ResponseCache
from pytest_llmswap.models.executor import ExecutionSettings, Executor
from pytest_llmswap.types import ModelCallError, ModelSpec, Request, Response

ECHO = ModelSpec(name="echo", kind="echo", target="echo")


def requests(spec: ModelSpec, n: int) -> list[Request]:
    return [Request(spec, (("user", f"prompt {i}"),)) for i in range(n)]


def test_each_answer_is_stored_before_anyone_hears_of_it(tmp_path):
    store = ResponseCache(tmp_path, "run1")
    executor = Executor(store, ExecutionSettings())
    seen: list[tuple[str, bool]] = []
    reqs = requests(ECHO, 5) * 2  # duplicates are called once
    results = executor.run(reqs, on_answer=lambda r, a: seen.append((r.key, store.get(r.key) is not None)))
    assert len(results) == 5 and executor.calls == 5
    assert sorted(seen) == sorted((r.key, True) for r in reqs[:5])
    again = Executor(ResponseCache(tmp_path, "run2"), ExecutionSettings())
    assert again.run(reqs) == results and again.calls == 0  # a rerun calls nothing
    assert again.run(reqs, fresh=True) == results and again.calls == 5  # re-recording ignores older runs


def test_empty_answers_are_errors_never_stored_unless_allowed(tmp_path):
    store = ResponseCache(tmp_path, "r")
    empty = Request(ECHO, (("user", ""),))
    allowed = Request(ECHO, (("user", ""),), allow_empty=True)
    assert empty.key == allowed.key  # allow_empty is not part of the key
    [answer] = Executor(store, ExecutionSettings()).run([empty]).values()
    assert isinstance(answer, ModelCallError) and "allow_empty=True" in str(answer)
    assert store.get(empty.key) is None
    [answer] = Executor(store, ExecutionSettings()).run([allowed]).values()
    assert isinstance(answer, Response) and answer.text == ""


def test_the_store_says_whether_it_holds_every_key_across_query_chunks_and_runs(tmp_path) -> None:
    store = ResponseCache(tmp_path, "run1")
    keys = [f"k{i}" for i in range(600)]  # more than one query's 500
    for key in keys:
        store.put(key, Response(text="a"))
    assert store.holds_all(keys + keys[:3]) and store.holds_all([])
    assert not store.holds_all([*keys, "missing"])
    later = ResponseCache(tmp_path, "run2")
    assert later.holds_all(keys) and not later.holds_all(keys, this_run_only=True)
    later.put("k0", Response(text="b"))
    assert later.holds_all(["k0"], this_run_only=True) and not later.holds_all(keys[:2], this_run_only=True)


def test_text_round_trips_through_the_store_losslessly(tmp_path):
    text = "a\udc80b\x00c\U0001f600" + "y" * (1 << 20)
    ResponseCache(tmp_path, "r").put("k", Response(text=text))
    assert ResponseCache(tmp_path, "other").get("k").text == text


def test_threads_share_one_store(tmp_path):
    store = ResponseCache(tmp_path, "r")
    threads = [threading.Thread(target=lambda w=w: [store.put(f"{w}-{i}", Response(text=str(i))) for i in range(40)])
               for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 240


def test_an_unwritable_store_is_one_line_and_the_run_goes_on(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "responses.sqlite3").write_bytes(b"this is not a database" * 100)
    store = ResponseCache(tmp_path / "store", "r")
    with pytest.raises(OutputWriteError, match=r"^cannot write .*responses.sqlite3: .*--llmswap-no-cache$"):
        store.put("k", Response(text="x"))
    executor = Executor(store, ExecutionSettings())
    results = executor.run(requests(ECHO, 3))
    assert all(isinstance(a, Response) for a in results.values())
    assert "responses.sqlite3" in str(executor.store_error)


def test_an_ephemeral_store_is_shared_by_run_id_and_removed(tmp_path):
    a, b = ResponseCache.ephemeral("run-xyz"), ResponseCache.ephemeral("run-xyz")
    a.put("k", Response(text="v"))
    assert b.get("k").text == "v" and a.directory == b.directory
    a.remove()
    b.close()
    assert not a.directory.exists()


def test_api_candidates_are_called_concurrently_with_each_other(litellm_loaded, tmp_path):
    """Three models, each limited to one call at a time, against one server: it sees three calls in flight."""
    with chat_server(lambda p: "ok " + p, gather=3) as server:
        specs = [ModelSpec(name=f"m{i}", kind="litellm", target=f"openai/m{i}",
                           params=(("api_base", server.url), ("api_key", "sk-x"))) for i in range(3)]
        executor = Executor(None, ExecutionSettings(concurrency=1, retries=0))
        results = executor.run([r for s in specs for r in requests(s, 3)])
        assert server.max_in_flight == 3 and len(server.seen) == 9
    assert all(isinstance(a, Response) for a in results.values()) and executor.calls == 9


def test_a_backend_that_cannot_start_fails_its_requests_with_a_redacted_line(tmp_path):
    spec = ModelSpec(name="bad", kind="nope", target="x", params=(("extra_headers", {"X-Key": "hdr-secret-1234"}),))
    results = Executor(None, ExecutionSettings()).run(requests(spec, 2) + requests(ECHO, 2))
    errors = [a for a in results.values() if isinstance(a, ModelCallError)]
    assert len(errors) == 2 and str(errors[0]).startswith("bad: ValueError: no backend for model kind")
