"""Replay, record and candidate modes, through inner pytest sessions."""

import json

import pytest

from pytest_llmswap.results import RESULTS_FORMAT_VERSION


def goldens(pytester: pytest.Pytester, module: str = "test_suite") -> dict:
    return json.loads((pytester.path / "__llm_goldens__" / f"{module}.json").read_text())


def test_replay_without_golden_fails_and_says_how_to_record(suite):
    result = suite().runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*no golden for case 'a'; record it with: pytest --incumbent-model SPEC "
                                 "--llmswap-record new test_suite.py::test_contract*"])


def test_record_new_then_replay_offline(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    data = goldens(pytester)
    assert data["format_version"] == 1
    case = data["contracts"]["test_contract"]["cases"]["a"]
    assert case["model"] == "echo" and case["samples"][0]["text"] == "Say hi"
    assert case["samples"][0]["passed"] is True and case["variables"] == {"id": "a", "word": "hi"}
    text = (pytester.path / "__llm_goldens__" / "test_suite.json").read_text()
    from pytest_llmswap.golden import dump_golden_file, load_golden_file

    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    assert text == dump_golden_file(load_golden_file(path))  # a re-write of an unchanged file is byte-identical
    keys = [line.strip().split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert keys == sorted(keys) == ["contracts", "format_version"]
    assert '      "cases": {' in text  # indented, one key per line
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_record_new_keeps_existing_and_all_rerecords(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    data = json.loads(path.read_text())
    data["contracts"]["test_contract"]["cases"]["a"]["recorded_at"] = "kept"
    path.write_text(json.dumps(data))
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    assert goldens(pytester)["contracts"]["test_contract"]["cases"]["a"]["recorded_at"] == "kept"
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "all").assert_outcomes(passed=2)
    assert goldens(pytester)["contracts"]["test_contract"]["cases"]["a"]["recorded_at"] != "kept"


def test_changed_params_make_goldens_stale_and_old_goldens_stay_current(suite):
    cases = 'cases=[{"id": "a", "word": "hi"}]'
    pytester = suite(f'prompt="Say {{{{ word }}}}", {cases}, params={{"max_tokens": 48}}')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)
    suite(f'prompt="Say {{{{ word }}}}", {cases}, params={{"max_tokens": 20}}')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stale golden for case 'a': the prompt or its params changed*"])
    # A golden recorded before params were hashed holds the messages' hash: current while its params agree.
    from pytest_llmswap.contract.prompt import prompt_hash

    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    data = json.loads(path.read_text())
    case = data["contracts"]["test_contract"]["cases"]["a"]
    case["prompt_hash"] = prompt_hash([("user", "Say hi")])
    path.write_text(json.dumps(data))
    pytester.runpytest().assert_outcomes(failed=1)
    case["params"]["max_tokens"] = 20
    path.write_text(json.dumps(data))
    pytester.runpytest().assert_outcomes(passed=1)


def test_samples_records_k_samples_and_verdicts(suite):
    pytester = suite(body='assert output.text.endswith("hi")')
    result = pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "--llmswap-samples", "3")
    result.assert_outcomes(passed=1, failed=1)
    cases = goldens(pytester)["contracts"]["test_contract"]["cases"]
    assert len(cases["a"]["samples"]) == 3 and all(s["passed"] for s in cases["a"]["samples"])
    assert [s["passed"] for s in cases["b"]["samples"]] == [False, False, False]
    result.stdout.fnmatch_lines(["*sample 1 of 3:*"])


def test_candidate_ids_gain_the_candidate_name_and_nothing_is_recorded(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    before = (pytester.path / "__llm_goldens__" / "test_suite.json").read_text()
    result = pytester.runpytest("-v", "--candidate-model", "mirror=echo", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_contract?a-mirror? PASSED*", "*= llmswap =*",
                                 "mirror: inconclusive: broken-case rate 0.0% [[]0.0%, *]: 2 cases cannot show it is below 5.0%*",
                                 "  pass rate 100.0%: 2 of 2 cases passed (incumbent 100.0%)*"])
    assert (pytester.path / "__llm_goldens__" / "test_suite.json").read_text() == before
    out = json.loads((pytester.path / "out.json").read_text())
    assert out["format_version"] == RESULTS_FORMAT_VERSION == 4
    assert {c["candidate"] for c in out["cases"]} == {"mirror"}
    assert all(c["metrics"]["exact"] == 1.0 and c["metrics"]["edit"] == 1.0 for c in out["cases"])
    assert (pytester.path / "llmswap-report.html").is_file()


def test_flips_regressions_and_improvements(suite, tmp_path):
    # The golden for 'a' passes and 'b' fails; an echo candidate on an edited golden file flips both.
    pytester = suite(body='assert "hi" in output.text')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    data = json.loads(path.read_text())
    cases = data["contracts"]["test_contract"]["cases"]
    cases["a"]["samples"][0]["text"], cases["b"]["samples"][0]["text"] = "hi", "hi"  # a: pass, b: pass
    path.write_text(json.dumps(data))
    result = pytester.runpytest("--candidate-model", "echo", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=1, failed=1)
    out = json.loads((pytester.path / "out.json").read_text())
    flips = {c["case_id"]: c["flip"] for c in out["cases"]}
    assert flips == {"a": None, "b": "regression"}
    summary = out["summaries"]["candidates"]["echo"]
    assert summary["regressions"] == 1 and summary["improvements"] == 0
    result.stdout.fnmatch_lines(["*1 regression, 0 improvements*"])


def test_json_output_that_is_not_json_is_a_failed_check(suite):
    pytester = suite(decorator='prompt="{{ word }}", output="json", cases=[{"id": "ok", "word": "[1]"}, '
                               '{"id": "bad", "word": "nope"}]',
                     body="assert isinstance(output.json, list)")
    result = pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*OutputFormatError: output of echo is not JSON*'nope'*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_drift_beyond_tolerance_fails_with_the_reason(suite):
    pytester = suite(decorator='prompt="{{ doc }}", output="json", tolerance={"fields": ["category"], "edit": 0.9}, '
                               'cases=[{"id": "x", "doc": "{\\"category\\": \\"bug\\", \\"n\\": 1}"}]',
                     body="assert output.json")
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=1)
    path = pytester.path / "__llm_goldens__" / "test_suite.json"
    data = json.loads(path.read_text())
    data["contracts"]["test_contract"]["cases"]["x"]["samples"][0]["text"] = '{"n": 1, "category": "billing"}'
    path.write_text(json.dumps(data))
    result = pytester.runpytest("--candidate-model", "echo", "--llmswap-json", "out.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*drift beyond tolerance: edit 0.* < 0.9; field 'category': golden \"billing\", "
                                 "candidate \"bug\"*"])
    case = json.loads((pytester.path / "out.json").read_text())["cases"][0]
    assert case["metrics"]["fields"] == 0.5 and case["candidate_passed"] is True and case["flip"] is None


def test_stale_goldens_fail_their_item_unless_told_to_warn(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    suite(decorator='prompt="Please say {{ word }}", cases=[{"id": "a", "word": "hi"}, {"id": "b", "word": "yo"}]')
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*stale golden for case 'a': the prompt or its params changed since it was recorded; "
                                 "re-record it with: pytest --incumbent-model SPEC --llmswap-record new test_suite.py::test_contract "
                                 "(or set stale_goldens = \"warn\" in [[]tool.llmswap[]])"])
    pytester.makefile(".toml", pyproject='[tool.llmswap]\nsemantic = false\nstale_goldens = "warn"\n')
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["stale goldens (prompt changed; re-record with --llmswap-record new): 2",
                                 "  test_suite.py::test_contract[[]a[]]"])
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    assert goldens(pytester)["contracts"]["test_contract"]["cases"]["a"]["samples"][0]["text"] == "Please say hi"


def test_unused_goldens_fail_a_full_run_warn_on_request_and_are_pruned(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    suite(decorator='prompt="Say {{ word }}", cases=[{"id": "a", "word": "hi"}]')
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR 1 unused golden(s) (no collected case uses them): remove them with "
                                 "--llmswap-record new --llmswap-prune, or set unused_goldens = \"warn\" in "
                                 "[[]tool.llmswap[]]", "unused goldens (no collected case uses them): 1",
                                 "  test_suite.py::test_contract[[]b[]]"])
    # A partial run cannot know what is unused: it neither fails nor prunes.
    assert pytester.runpytest("-k", "a").ret == pytest.ExitCode.OK
    partial = pytester.runpytest("-k", "a", "--incumbent-model", "echo", "--llmswap-record", "new", "--llmswap-prune")
    partial.stdout.fnmatch_lines(["ERROR --llmswap-prune needs a full run*nothing was pruned"])
    assert "b" in goldens(pytester)["contracts"]["test_contract"]["cases"]
    pytester.makefile(".toml", pyproject='[tool.llmswap]\nsemantic = false\nunused_goldens = "warn"\n')
    warned = pytester.runpytest()
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["WARNING 1 unused golden(s)*"])
    pruned = pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new", "--llmswap-prune")
    pruned.stdout.fnmatch_lines(["pruned 1 unused golden(s)"])
    assert list(goldens(pytester)["contracts"]["test_contract"]["cases"]) == ["a"]
    assert pytester.runpytest().ret == pytest.ExitCode.OK


def test_prune_without_record_is_a_usage_error(suite):
    result = suite().runpytest("--llmswap-prune")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmswap-prune removes unused goldens while recording: add --llmswap-record*"])


def test_case_files_jsonl_json_csv_and_fixture_values(pytester):
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "c.jsonl").write_text('{"id": "j1", "w": "a"}\n\n{"id": "j2", "w": "b"}\n')
    (pytester.path / "data" / "c.json").write_text('[{"w": "c"}]')
    (pytester.path / "data" / "c.csv").write_text("id,w\ncsv1,d\n")
    (pytester.path / "p.j2").write_text("word: {{ w }}")
    pytester.makepyfile(test_case_sources="""
from pytest_llmswap import llm_contract

@llm_contract(prompt="p.j2", cases="data/c.jsonl")
def test_jsonl(output, case): assert output.text == "word: " + case["w"]

@llm_contract(prompt="p.j2", cases="data/c.json")
def test_json(output, golden): assert golden.text == output.text == "word: c"

@llm_contract(prompt="p.j2", cases="data/c.csv")
def test_csv(output): assert output.model == "echo" and output.usage.output_tokens == 2
""")
    result = pytester.runpytest("-v", "--incumbent-model", "echo", "--llmswap-record", "new")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_jsonl?j1? PASSED*", "*test_csv?csv1? PASSED*"])


def test_hypothesis_cases_are_the_same_in_every_run(pytester):
    pytester.makepyfile(test_h="""
from hypothesis import strategies as st
from pytest_llmswap import llm_contract

@llm_contract(prompt="n={{ n }}", cases=st.fixed_dictionaries({"n": st.integers(0, 10**6)}), examples=5)
def test_h(output, case): assert output.text == f"n={case['n']}"
""")
    first = pytester.runpytest("--collect-only", "-q").stdout.lines
    second = pytester.runpytest_subprocess("--collect-only", "-q").stdout.lines
    ids = [line for line in first if "test_h[" in line]
    assert len(ids) == 5 and ids == [line for line in second if "test_h[" in line]
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=5)


def test_markdown_summary_option_and_github_step_summary(suite, monkeypatch):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    step_summary = pytester.path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest("--candidate-model", "mirror=echo", "--llmswap-markdown", "pr.md")
    result.assert_outcomes(passed=2)
    text = (pytester.path / "pr.md").read_text()
    assert "mirror" in text and "inconclusive" in text  # two cases cannot bound the regression rate
    assert step_summary.read_text().startswith("earlier step\n") and "mirror" in step_summary.read_text()


def test_junit_xml_carries_model_flip_and_drift_metrics(suite):
    import xml.etree.ElementTree as ET

    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")
    pytester.runpytest("--candidate-model", "mirror=echo", "--junitxml", "junit.xml").assert_outcomes(passed=2)
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    props = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert props["test_contract[a-mirror]"]["llmswap_model"] == "mirror"
    assert props["test_contract[a-mirror]"]["llmswap_case"] == "a"
    assert props["test_contract[a-mirror]"]["llmswap_flip"] == "none"
    assert float(props["test_contract[a-mirror]"]["llmswap_edit"]) == 1.0  # echo answers the golden exactly


def test_a_failure_while_summarising_is_one_line_not_a_traceback(suite, monkeypatch):
    import pytest_llmswap.report.terminal as reporting

    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new")

    def broken(results):
        raise ValueError("summaries went wrong\nsecond line")

    monkeypatch.setattr(reporting, "summarize", broken)
    result = pytester.runpytest("--candidate-model", "mirror=echo")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["ERROR pytest-llmswap could not summarise this run (ValueError: summaries went "
                                 "wrong); please report it with the run's output"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
