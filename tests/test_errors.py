"""Bad input: one clear line each, before any model is called."""

import pytest


def error_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.stderr.lines + result.stdout.lines if line.startswith("ERROR: ")]
    assert len(lines) == 1, result.stdout.str() + result.stderr.str()
    return lines[0]


def collection_error(result: pytest.RunResult) -> str:
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(("args", "expected"), [
    (["--candidate-model", "gpt4"], "ERROR: unknown model spec 'gpt4': use provider/model*"),
    (["--candidate-model", "nosuchprovider/model-x"], "*litellm knows no provider 'nosuchprovider'*"),
    (["--candidate-model", "openai/gpt-4o-mini"], "*needs OPENAI_API_KEY in the environment*"),
    (["--llmswap-record", "new"], "ERROR: test_suite.py::test_contract: recording a contract with a prompt needs --incumbent-model SPEC*"),
    (["--llmswap-samples", "0", "--incumbent-model", "echo", "--llmswap-record", "new"], "*must be at least 1*"),
    (["--candidate-model", "hf:./models/q?quant=int4"], "*quant*int4*"),
    (["--candidate-model", "a=echo", "--candidate-model", "a=echo"], "*given twice with the name 'a'*"),
])
def test_bad_options_are_one_usage_error_line(suite, monkeypatch, litellm_loaded, args, expected):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = suite().runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error_line(result)
    result.stderr.fnmatch_lines([expected])


def test_named_model_that_is_not_configured_lists_the_configured_ones(suite):
    pytester = suite()
    pytester.makefile(".toml", pyproject='[tool.llmswap.models.fast]\nmodel = "echo"\n')
    result = pytester.runpytest("--candidate-model", "slow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown model spec 'slow'*Configured names: fast."])


def test_named_model_needs_a_model_key(suite):
    pytester = suite()
    pytester.makefile(".toml", pyproject='[tool.llmswap.models.fast]\ntemperature = 0\n')
    result = pytester.runpytest("--candidate-model", "fast")
    result.stderr.fnmatch_lines(["ERROR: *[[]tool.llmswap.models.fast[]] needs a 'model' key*"])


@pytest.mark.parametrize(("decorator", "expected"), [
    ('prompt="missing.j2", cases=[{"a": 1}]', "*prompt template file not found: */missing.j2*"),
    ('prompt="Hi {{ name }}", cases=[{"id": "c1", "nome": "x"}]',
     "*case 'c1': 'name' is undefined; add it to the case (case keys: id, nome)*"),
    ('prompt="Hi", cases="nope.jsonl"', "*cases file not found: */nope.jsonl*"),
    ('prompt="Hi", cases=[]', "*the contract has no cases*"),
    ('prompt="Hi", cases=[{"id": "x"}, {"id": "x"}]', "*duplicate case id 'x' (cases 1 and 2)*"),
    ('prompt="Hi {{", cases=[{"a": 1}]', "*syntax error on line 1*"),
    ('prompt="Hi", cases=[{"a": 1}], tolerance={"semantics": 0.8}', "*unknown tolerance key(s) semantics*"),
])
def test_bad_contracts_are_one_collection_error(suite, decorator, expected):
    result = suite(decorator=decorator).runpytest()
    text = collection_error(result)
    result.stdout.fnmatch_lines([expected])
    assert "no model" not in text


def test_malformed_jsonl_line_is_named(suite):
    pytester = suite(decorator='prompt="{{ a }}", cases="c.jsonl"')
    (pytester.path / "c.jsonl").write_text('{"a": 1}\n{"a": 2\n')
    result = pytester.runpytest()
    collection_error(result)
    result.stdout.fnmatch_lines(["*c.jsonl:2: malformed JSON line*"])


def test_output_format_must_be_known(suite):
    result = suite(decorator='prompt="x", cases=[{"a": 1}], output="yaml"').runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*llm_contract(output='yaml'): use one of text, json*"])


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "*is not valid JSON*restore it from version control*"),
    ('{"format_version": 99, "contracts": {}}', "*format version 99, newer than this pytest-llmswap reads (1)*"),
    ('{"contracts": {}}', "*has no format_version*"),
    ('{"format_version": 1, "contracts": {"test_contract": {"cases": {"a": {}}}}}', "*is malformed*"),
])
def test_bad_golden_files_stop_the_run_with_one_line(suite, content, expected):
    pytester = suite()
    (pytester.path / "__llm_goldens__").mkdir()
    (pytester.path / "__llm_goldens__" / "test_suite.json").write_text(content)
    result = pytester.runpytest("--candidate-model", "echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error_line(result)
    result.stderr.fnmatch_lines([expected])
    assert not (pytester.path / ".llmswap_cache").exists()  # no model was called


def test_candidate_run_without_any_golden(suite):
    result = suite().runpytest("--candidate-model", "echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: no goldens found for the selected contracts: record them first with "
                                 "pytest --incumbent-model SPEC --llmswap-record new"])


def test_semantic_tolerance_without_the_extra_names_the_extra(suite, monkeypatch):
    from pytest_llmswap.run import plan

    pytester = suite(decorator='prompt="Say {{ word }}", cases=[{"word": "hi"}], tolerance={"semantic": 0.8}')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    monkeypatch.setattr(plan, "semantic_available", lambda: False)
    result = pytester.runpytest("--candidate-model", "echo")
    result.stderr.fnmatch_lines(["ERROR: *semantic extra is not installed: pip install 'pytest-llmswap[[]semantic[]]'"])


def test_record_of_a_model_error_fails_the_item_and_writes_no_golden(suite, monkeypatch, litellm_loaded):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    pytester = suite()
    # Port 9 on loopback refuses connections: the call fails fast and is not retried past the limit.
    result = pytester.runpytest("--incumbent-model", "openai/gpt-4o-mini", "--llmswap-record", "new",
                                "--llmswap-retries", "1", "--llmswap-timeout", "2", "--llmswap-backoff", "0.01",
                                "-o", "llmswap_concurrency=2")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*recording failed: openai/gpt-4o-mini: *Error after 2 attempt(s)*"])
    assert "sk-test-not-a-real-key-000" not in result.stdout.str()
    assert not list(pytester.path.glob("__llm_goldens__/*.json"))


@pytest.mark.parametrize(("spec", "expected"), [
    ("hf:./no-such-model-folder", "ERROR: *hf model folder does not exist: */no-such-model-folder"),
    ("hf:{teacher}?quant=bnb4", "ERROR: hf model *teacher: quant=bnb4 needs a CUDA GPU and torch sees none"),
])
def test_local_model_problems_stop_the_run_before_any_test(suite, spec, expected):
    import importlib.util
    from pathlib import Path

    if "bnb4" in spec:
        if importlib.util.find_spec("torch") is None:
            pytest.skip("torch is not installed")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    teacher = Path(__file__).resolve().parents[1] / "examples" / "models" / "teacher"
    result = suite().runpytest_subprocess("--candidate-model", spec.format(teacher=teacher))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
