"""The README's "On your own endpoint" section, run as written against two test servers on 127.0.0.1."""

import json
import re
from pathlib import Path

from openai_server import chat_server

SECTION = (Path(__file__).parents[1] / "README.md").read_text().split("## On your own endpoint")[1].split("\n## ")[0]


def block(lang: str) -> str:
    return re.search(rf"```{lang}\n(.*?)```", SECTION, re.S).group(1)


def category(prompt: str) -> str:
    text = prompt.lower()
    return "billing" if "charged" in text or "invoice" in text else "bug" if "crash" in text else "account"


def small(prompt: str) -> str:
    return json.dumps({"category": "account" if "invoice" in prompt.lower() else category(prompt)})


def test_the_readme_section_records_replays_and_compares_as_shown(pytester, litellm_loaded, monkeypatch):
    console = block("console")
    with chat_server(lambda p: json.dumps({"category": category(p)})) as prod, chat_server(small) as cand:
        toml = block("toml").replace("https://llm.example.com/v1", prod.url, 1)
        toml = toml.replace("https://llm.example.com/v1", cand.url, 1)
        pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n\n" + toml)
        (pytester.path / "tests").mkdir()
        (pytester.path / "tests" / "test_triage.py").write_text(block("python"))
        monkeypatch.delenv("TEAM_LLM_KEY", raising=False)
        missing = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new")
        assert missing.ret == 4 and not prod.seen
        assert any(line.endswith("$TEAM_LLM_KEY is not set; export") for line in SECTION.splitlines())
        missing.stderr.fnmatch_lines(["*$TEAM_LLM_KEY is not set; export TEAM_LLM_KEY (in CI, from the secret "
                                      "store) or change api_key"])
        monkeypatch.setenv("TEAM_LLM_KEY", "sk-team-123")
        recorded = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new")
        replayed = pytester.runpytest()
        compared = pytester.runpytest("--candidate-model", "small")
    for result, shown in ((recorded, "4 passed"), (replayed, "4 passed"), (compared, "1 failed, 3 passed")):
        assert shown in console and result.outlines[-1].startswith("=") and shown in result.outlines[-1]
    assert all(s["headers"].get("authorization") == "Bearer sk-team-123" for s in prod.seen + cand.seen)
    # Every line the README shows for the compare run is printed, up to where the README shortens it.
    for line in console.split("$ pytest --candidate-model small\n")[1].splitlines():
        if line.startswith(("tests/", "HTML report", "1 failed")):
            continue
        head = line.split("...")[0].rstrip(" ;,")
        assert any(head in out for out in compared.outlines), head
