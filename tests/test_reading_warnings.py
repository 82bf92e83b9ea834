"""No library warning leaks into an application-mode run (issue 20.8): pydantic's notes on litellm's types stay
out of pytest's warnings summary, while the suite's own warnings still show."""

from __future__ import annotations

import pytest

from openai_server import chat_server

APP = '''
import litellm


def ask(url, question):
    response = litellm.completion(model="openai/shop-model", api_base=url, api_key="sk-app",
                                  messages=[{"role": "user", "content": question}])
    response.model_dump()  # what an application may do with it (pydantic's serializer runs)
    return response.choices[0].message.content
'''

TEST = '''
import warnings

import shop
from pytest_llmswap import llm_contract


@llm_contract(cases=[{{"id": "a", "q": "Where is order 42?"}}, {{"id": "b", "q": "Why is order 7 late?"}}])
def test_app(case):
    warnings.warn(UserWarning("the suite's own warning"))
    return shop.ask({url!r}, case["q"])
'''


@pytest.mark.slow  # two inner sessions in subprocesses (pydantic's warnings are filtered in this one), ~15 s
def test_application_mode_runs_without_library_warnings(pytester: pytest.Pytester) -> None:
    with chat_server(lambda prompt: "Your order is on its way.", model="shop-model-2026-01-01") as server:
        pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n")
        pytester.makepyfile(shop=APP, test_app=TEST.format(url=server.url))
        runs = {"record": pytester.runpytest_subprocess("--llmswap-record", "new", "-p", "no:cacheprovider"),
                "replay": pytester.runpytest_subprocess("-p", "no:cacheprovider")}
    for mode, result in runs.items():
        result.assert_outcomes(passed=2, warnings=2)
        out = result.stdout.str() + result.stderr.str()
        assert "the suite's own warning" in out, mode
        assert "pydantic" not in out and "ReadOnly" not in out and "serializer" not in out, (mode, out)
