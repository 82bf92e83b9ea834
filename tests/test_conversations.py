"""Conversations: ``@llm_contract(messages=[...])`` records, replays, goes stale when a turn changes, and sends
every turn to each backend (echo, an OpenAI-compatible server, a local chat-templated model)."""

import json

import pytest

from openai_server import chat_server, named_models

HISTORY = [{"role": "user", "content": "My invoice is wrong."},
           {"role": "assistant", "content": "Which invoice number?"}]
CASES = [{"id": "inv", "history": HISTORY, "reply": "Number 42, charged twice."},
         {"id": "login", "history": [{"role": "user", "content": "I cannot log in."},
                                     {"role": "assistant", "content": "What happens when you try?"}],
          "reply": "It says password expired."}]
MESSAGES = [{"role": "system", "content": "You are support for {{ product }}."}, "history",
            {"role": "user", "content": "{{ reply }}"}]


def write(pytester: pytest.Pytester, cases: list[dict], product: str = "Acme", pyproject: str = "") -> None:
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n" + pyproject)
    pytester.makepyfile(test_support=f"""
from pytest_llmswap import llm_contract

@llm_contract(messages={MESSAGES!r}, cases={[dict(c, product=product) for c in cases]!r})
def test_support(output, case):
    assert output.text
""")


def test_three_turn_history_records_replays_and_goes_stale_when_a_turn_changes(pytester):
    write(pytester, CASES)
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    golden = json.loads((pytester.path / "__llm_goldens__" / "test_support.json").read_text())
    case = golden["contracts"]["test_support"]["cases"]["inv"]
    assert case["messages"] == [["system", "You are support for Acme."], ["user", "My invoice is wrong."],
                                ["assistant", "Which invoice number?"], ["user", "Number 42, charged twice."]]
    assert case["samples"][0]["text"] == "Number 42, charged twice."
    pytester.runpytest().assert_outcomes(passed=2)
    # One earlier turn of one case's history changes: that case is stale, the other replays.
    changed = [dict(CASES[0], history=[HISTORY[0], {"role": "assistant", "content": "Which order?"}]), CASES[1]]
    write(pytester, changed)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stale golden for case 'inv'*"])
    # A templated turn changes: every case is stale.
    write(pytester, CASES, product="Globex")
    pytester.runpytest().assert_outcomes(failed=2)


def test_every_turn_reaches_an_openai_compatible_server_in_order(pytester, litellm_loaded):
    with chat_server(lambda prompt: f"ok: {prompt}") as prod, chat_server(lambda prompt: "sure") as cand:
        write(pytester, CASES, pyproject=named_models({"prod": prod.url, "cand": cand.url}))
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=2)
        pytester.runpytest("--candidate-model", "cand").assert_outcomes(passed=2)
    for server in (prod, cand):
        sent = {s["body"]["messages"][-1]["content"]: s["body"]["messages"] for s in server.seen}
        assert sent["Number 42, charged twice."] == [
            {"role": "system", "content": "You are support for Acme."}, *HISTORY,
            {"role": "user", "content": "Number 42, charged twice."}]


@pytest.mark.parametrize(("messages", "cases", "error"), [
    ('[{"role": "user", "content": "hi"}], prompt="x"', '[{"a": 1}]',
     "llm_contract(messages=...) replaces prompt= and system=: put those turns in messages"),
    ('[{"role": "robot", "content": "hi"}]', '[{"a": 1}]',
     "llm_contract(messages=...): entry 1 ({'role': 'robot', 'content': 'hi'}) must be {'role': one of system, "
     "user, assistant, 'content': a template string} or a case field name"),
    ('["history"]', '[{"id": "c1"}]', "case 'c1': history field 'history' is missing (case keys: id)"),
    ('["history"]', '[{"id": "c1", "history": "not json"}]',
     "case 'c1': history field 'history' is text that is not a JSON list of messages (Expecting value)"),
    ('["history"]', '[{"id": "c1", "history": [{"role": "user"}]}]',
     "case 'c1': history field 'history': message 1 ({'role': 'user'}) needs a role (system, user, assistant) and "
     "a text content"),
])
def test_a_bad_conversation_is_one_line(suite, messages, cases, error):
    result = suite(f"messages={messages}, cases={cases}").runpytest()
    assert result.ret != 0
    assert any(error in line for line in result.outlines), result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_a_history_held_as_json_text_is_a_conversation(suite):
    history = json.dumps(HISTORY)
    pytester = suite(f'messages="history", cases=[{{"id": "c", "history": {history!r}}}]',
                     body='assert output.text == "My invoice is wrong."')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=1)


def test_a_local_chat_model_sees_every_turn_through_its_chat_template(tmp_path):
    pytest.importorskip("transformers")
    from hf_fixtures import hf_spec

    from pytest_llmswap.contract.decorator import llm_contract, resolve
    from pytest_llmswap.models.hf import HFBackend
    from pytest_llmswap.types import Request, Response

    @llm_contract(messages=MESSAGES, cases=[dict(CASES[0], product="Acme")])
    def test_x(output):
        pass

    case = resolve(test_x.__llmswap_contract__, tmp_path / "test_x.py", "test_x", "test_x.py::test_x").cases[0]
    teacher = HFBackend(hf_spec())
    text, _ = teacher.prompt_text(case.messages)
    turns = ["<|system|>", "support for Acme", "<|user|>", "My invoice is wrong.", "<|assistant|>",
             "Which invoice number?", "<|user|>", "Number 42, charged twice.", "<|assistant|>"]
    positions = [text.find(t, text.find(turns[i - 1]) if i else 0) for i, t in enumerate(turns)]
    assert -1 not in positions and positions == sorted(positions), text
    [answer] = teacher.complete([Request(model=teacher.spec, messages=case.messages, params=(("max_new_tokens", 8),))])
    assert isinstance(answer, Response)
