"""No credential in any file or stream (issue 18), keys from the environment and refused keys (issue 19).

A distinct secret is planted in each place a credential can come from; providers on 127.0.0.1 echo the
request (path, query and every header) in 401, 400 and 500 bodies; then every file the run wrote and the
terminal are searched for every secret. Application mode reports the provider's real error and retries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_server import chat_server

SECRETS = {
    "environment": "env-openai-key-0a1b2c3d",  # OPENAI_API_KEY, used by a model without api_key
    "api_key": "cfg-api-key-4e5f6a7b",  # api_key in [tool.llmswap.models.NAME]
    "os.environ/": "ref-gateway-8c9d0e1f",  # api_key = "os.environ/LLM_GATEWAY" (no KEY/TOKEN in the name)
    "extra_headers": "xhdr-team-2a3b4c5d",  # extra_headers, no scheme
    "headers bearer": "bearer-token-6e7f8a9b",  # headers = {Authorization = "Bearer ..."}
    "headers plain": "plain-header-0c1d2e3f",  # headers, no scheme
    "url userinfo": "urlpass-4a5b6c7d",  # http://user:PASSWORD@host
    "url query": "querykey-8e9f0a1b",  # ?key=...
    "app litellm key": "app-litellm-key-2c3d4e5f",  # litellm.completion(api_key=...) in the application
    "app sdk key": "app-sdk-key-6a7b8c9d",  # OpenAI(api_key=...) in the application
}
S = SECRETS
CASES = ["alpha", "beta"]
FAST = ("--llmswap-timeout", "2", "--llmswap-retries", "0")
REPORTS = ("--llmswap-json", "out.json", "--llmswap-report", "report.html", "--llmswap-markdown", "summary.md",
           "--junitxml", "junit.xml")


def answer(prompt: str) -> str:
    return f"answer to {prompt}"


def with_credentials(url: str) -> str:
    """``url`` with a password in its userinfo and a key in its query."""
    return url.replace("http://", f"http://llmuser:{S['url userinfo']}@") + f"?key={S['url query']}"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The planted environment secrets, and a ``$GITHUB_STEP_SUMMARY`` file (returned)."""
    monkeypatch.setenv("OPENAI_API_KEY", S["environment"])
    monkeypatch.setenv("LLM_GATEWAY", S["os.environ/"])
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


def assert_no_secret(files: list[Path], *texts: str) -> None:
    """No planted secret in any of ``files`` nor in ``texts`` (the terminal)."""
    assert files
    for path in files:
        data = path.read_bytes()
        leaked = [where for where, value in S.items() if value.encode() in data]
        assert not leaked, f"{path.name} holds the secret from {leaked}"
    for text in texts:
        leaked = [where for where, value in S.items() if value in text]
        assert not leaked, f"the terminal shows the secret from {leaked}"


def written(pytester: pytest.Pytester, summary: Path, *own: str) -> list[Path]:
    """Every file the runs wrote (goldens, the response store, reports, junit), and the step summary."""
    mine = {pytester.path / name for name in ("pyproject.toml", *own)}
    files = [p for p in pytester.path.rglob("*") if p.is_file() and p not in mine and "__pycache__" not in p.parts]
    names = {p.name for p in files}
    assert {"out.json", "report.html", "summary.md", "junit.xml"} <= names and summary.exists(), names
    assert any(p.suffix == ".sqlite" or "cache" in str(p) for p in files), names  # the response store
    return files + [summary]


def seen(server, name: str) -> list[str]:
    """The values of header ``name`` the server received."""
    return [v for s in server.seen for k, v in s["headers"].items() if k.lower() == name.lower()]


def test_no_planted_secret_reaches_a_golden_the_store_a_report_or_the_terminal(pytester, litellm_loaded, environment):
    with chat_server(answer) as prod, chat_server(answer, fault_for=lambda p: "echo_headers:401") as c401, \
            chat_server(answer, fault_for=lambda p: "echo_headers:400") as c400, \
            chat_server(answer, fault_for=lambda p: "echo_headers:500") as c500:
        pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false

[tool.llmswap.models.prod]
model = "openai/prod-model"
api_base = "{prod.url}?key={S['url query']}"
api_key = "os.environ/LLM_GATEWAY"
temperature = 0

[tool.llmswap.models.c401]
model = "openai/c401-model"
api_base = "{c401.url}"
api_key = "{S['api_key']}"
extra_headers = {{ X-Team-Key = "{S['extra_headers']}" }}

[tool.llmswap.models.c400]
model = "openai/c400-model"
api_base = "{c400.url}"
headers = {{ Authorization = "Bearer {S['headers bearer']}", X-Plain = "{S['headers plain']}" }}

[tool.llmswap.models.c500]
model = "openai/c500-model"
api_base = "{c500.url}?key={S['url query']}"
api_key = "os.environ/LLM_GATEWAY"

[tool.llmswap.models.cuser]
model = "openai/cuser-model"
api_base = "{with_credentials(c500.url)}"
api_key = "{S['api_key']}"
""")
        pytester.makepyfile(test_qa=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{{{ q }}}}", cases=[{{"id": q, "q": q}} for q in {CASES!r}])
def test_qa(output, case):
    assert output.text == "answer to Question: " + case["q"]
""")
        rec = pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new", *FAST)
        rec.assert_outcomes(passed=2)
        result = pytester.runpytest(*(a for c in ("c401", "c400", "c500", "cuser") for a in ("--candidate-model", c)),
                                    *FAST, *REPORTS)
        result.assert_outcomes(failed=8)
        # Each secret was really sent, and echoed back in an error (the async client refuses a URL's userinfo
        # beside a key: that one fails before sending).
        assert seen(prod, "authorization") == [f"Bearer {S['os.environ/']}"] * 2
        assert seen(c401, "x-team-key")[0] == S["extra_headers"] and seen(c401, "authorization")[0].endswith(S["api_key"])
        assert seen(c400, "authorization")[0] == f"Bearer {S['headers bearer']}"
        assert seen(c400, "x-plain")[0] == S["headers plain"]
        assert seen(c500, "authorization")[0] == f"Bearer {S['os.environ/']}"
    out = result.stdout.str()
    for model, status in (("c401", "401"), ("c400", "BadRequestError"), ("c500", "InternalServerError")):
        assert any(f"model call failed: {model}: " in line and status in line and "headers were" in line
                   for line in out.splitlines()), model
    golden = json.loads((pytester.path / "__llm_goldens__" / "test_qa.json").read_text())
    params = golden["contracts"]["test_qa"]["cases"]["alpha"]["params"]
    assert params["temperature"] == 0 and "api_key" not in params
    assert params["api_base"] == prod.url + "?key=***"
    assert_no_secret(written(pytester, environment), rec.stdout.str(), rec.stderr.str(), out, result.stderr.str())


APP = """
import os

import litellm
from openai import OpenAI


def ask(question):
    url = os.environ["APP_URL"]
    if question == "lite":
        r = litellm.completion(model="openai/app-model", api_base=url, api_key={lite!r}, max_retries=0,
                               messages=[{{"role": "user", "content": "Question: " + question}}])
    else:
        client = OpenAI(base_url=url, api_key={sdk!r}, max_retries=0)
        r = client.chat.completions.create(model="app-model", messages=[{{"role": "user", "content": "Question: " + question}}])
    return r.choices[0].message.content
"""

APP_TEST = """
import app
from pytest_llmswap import llm_contract


@llm_contract(cases=[{"id": "lite", "q": "lite"}, {"id": "sdk", "q": "sdk"}])
def test_app(case):
    return app.ask(case["q"])
"""


def write_app(pytester: pytest.Pytester, models: str = "") -> None:
    pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n" + models)
    pytester.makepyfile(app=APP.format(lite=S["app litellm key"], sdk=S["app sdk key"]), test_app=APP_TEST)


def named(name: str, url: str, **extra: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return f'\n[tool.llmswap.models.{name}]\nmodel = "openai/{name}-model"\napi_base = "{url}"\n{lines}'


def test_application_keys_and_named_model_headers_are_masked_in_application_mode(pytester, litellm_loaded,
                                                                                  environment, monkeypatch):
    with chat_server(answer) as good, chat_server(answer, fault_for=lambda p: "echo_headers:401") as echo, \
            chat_server(answer, fault_for=lambda p: "echo_headers:500") as cand:
        headers = f'{{ Authorization = "Bearer {S["headers bearer"]}", X-Plain = "{S["headers plain"]}" }}'
        write_app(pytester, named("cand", cand.url, headers=headers))
        monkeypatch.setenv("APP_URL", good.url)
        pytester.runpytest("--llmswap-record", "new").assert_outcomes(passed=2)
        # The application's own clients, with keys in no environment variable, get a 401 that echoes them.
        monkeypatch.setenv("APP_URL", echo.url)
        rec = pytester.runpytest("--llmswap-record", "all", *REPORTS)
        rec.assert_outcomes(failed=2)
        assert {v.split()[-1] for v in seen(echo, "authorization")} == {S["app litellm key"], S["app sdk key"]}
        rec.stdout.fnmatch_lines(["*recording failed: *the call failed: *Authentication*401*headers were*"])
        # A named model with a dict parameter (headers) answers the application's calls: the 500 it echoes is
        # the error shown (not "tenacity import failed").
        result = pytester.runpytest("--candidate-model", "cand", *FAST, *REPORTS)
        result.assert_outcomes(failed=2)
        assert seen(cand, "x-plain") == [S["headers plain"]] * 2
    out = result.stdout.str()
    assert "tenacity" not in out
    result.stdout.fnmatch_lines(["*model call failed: cand: InternalServerError after 1 attempt(s): *headers were*"])
    assert_no_secret(written(pytester, environment, "app.py", "test_app.py"), rec.stdout.str(), out,
                     result.stderr.str())


def test_application_mode_retries_errors_and_empty_answers_and_reports_the_real_error(pytester, litellm_loaded,
                                                                                       monkeypatch):
    with chat_server(answer) as good, chat_server(answer, faults=[500, "empty_content", "null_content"]) as flaky, \
            chat_server(answer, fault_for=lambda p: 503) as down:
        write_app(pytester, named("flaky", flaky.url, api_key='"k-flaky-1234"', extra_headers="{ X-Team = \"t\" }")
                  + named("down", down.url, api_key='"k-down-1234"'))
        monkeypatch.setenv("APP_URL", good.url)
        pytester.runpytest("--llmswap-record", "new").assert_outcomes(passed=2)
        # A 10 ms backoff: this test is about what is retried and reported, not how long the waits are.
        result = pytester.runpytest("--candidate-model", "flaky", "--llmswap-retries", "3", "--llmswap-json",
                                    "out.json", "--llmswap-backoff", "0.01")
        result.assert_outcomes(passed=2)  # a 500 and two empty answers, retried, then answers
        assert len(flaky.seen) == 5 and len(flaky.answered) == 2
        result = pytester.runpytest("--candidate-model", "down", "--llmswap-retries", "1", "--llmswap-timeout", "2",
                                    "--llmswap-backoff", "0.01")
        result.assert_outcomes(failed=2)
        assert len(down.seen) == 4  # each case: one call and one retry
    result.stdout.fnmatch_lines(["*model call failed: down: ServiceUnavailableError after 2 attempt(s)*503*"])
    assert "tenacity" not in result.stdout.str()


def test_a_key_from_the_environment_is_sent_and_a_missing_one_is_one_line_before_any_call(pytester, litellm_loaded,
                                                                                         monkeypatch):
    with chat_server(answer) as server:
        pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false
{named("gw", server.url, api_key='"os.environ/LLM_GATEWAY"')}""")
        pytester.makepyfile(test_qa=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{{{ q }}}}", cases=[{{"id": q, "q": q}} for q in {CASES!r}])
def test_qa(output, case):
    assert output.text == "answer to Question: " + case["q"]
""")
        monkeypatch.delenv("LLM_GATEWAY", raising=False)
        result = pytester.runpytest("--incumbent-model", "gw", "--llmswap-record", "new")
        assert result.ret != 0 and not server.seen
        errors = [line for line in result.stderr.str().splitlines() if "LLM_GATEWAY" in line]
        assert errors == ['ERROR: [tool.llmswap.models.gw]: api_key = "os.environ/LLM_GATEWAY" but $LLM_GATEWAY '
                          'is not set; export LLM_GATEWAY (in CI, from the secret store) or change api_key']
        monkeypatch.setenv("LLM_GATEWAY", "gw-key-13579bdf")
        pytester.runpytest("--incumbent-model", "gw", "--llmswap-record", "new").assert_outcomes(passed=2)
        assert seen(server, "authorization") == ["Bearer gw-key-13579bdf"] * 2


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_calls_to_that_model_and_the_run_goes_on(pytester, litellm_loaded, monkeypatch, status):
    cases = [f"q{i}" for i in range(6)]
    with chat_server(answer) as prod, chat_server(answer, fault_for=lambda p: status) as refused:
        monkeypatch.setenv("LLM_GATEWAY", "gw-key-refused-2468")
        pytester.makefile(".toml", pyproject=f"""
[tool.llmswap]
semantic = false
{named("prod", prod.url, api_key='"k-prod-1234"')}
{named("other", prod.url.replace("127.0.0.1", "localhost"), api_key='"k-other-1234"')}
{named("bad", refused.url, api_key='"os.environ/LLM_GATEWAY"')}""")
        pytester.makepyfile(test_qa=f"""
from pytest_llmswap import llm_contract

@llm_contract(prompt="Question: {{{{ q }}}}", cases=[{{"id": q, "q": q}} for q in {cases!r}])
def test_qa(output, case):
    assert output.text == "answer to Question: " + case["q"]
""")
        pytester.runpytest("--incumbent-model", "prod", "--llmswap-record", "new").assert_outcomes(passed=6)
        result = pytester.runpytest("--candidate-model", "bad", "--candidate-model", "other",
                                    "--llmswap-concurrency", "2", "--llmswap-json", "out.json")
        result.assert_outcomes(passed=6, failed=6)  # the other candidate's run goes on
        assert 1 <= len(refused.seen) <= 2  # the first call (and one already in flight at concurrency 2)
    out = json.loads((pytester.path / "out.json").read_text())
    errors = {c["call_error"] for c in out["cases"] if c["candidate"] == "bad"}
    assert len(errors) == 1
    [line] = errors
    assert line.startswith(f"bad: the provider refused the key ({status} ") and "set $LLM_GATEWAY" in line
    assert "gw-key-refused-2468" not in result.stdout.str()
    assert out["summaries"]["candidates"]["bad"]["failed_calls"] == 6
    verdict = out["summaries"]["verdicts"]["bad"]
    assert verdict["verdict"] == "inconclusive" and "refused the key" in json.dumps(verdict)
