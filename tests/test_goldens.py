"""The golden store: atomic, locked, merged writes and what a plain replay imports."""

import json
import os
import threading

import pytest

from pytest_llmswap import files as files_mod
from pytest_llmswap.files import OutputWriteError
from pytest_llmswap.golden import GoldenCase, GoldenFormatError, GoldenStore, golden_path, load_golden_file


def make_case(text: str) -> GoldenCase:
    return GoldenCase(prompt_hash="h", variables={}, messages=[["user", "q"]], model="m",
                      params={"temperature": 0, "api_key": "sk-must-not-be-written"},
                      samples=[{"text": text, "usage": {}, "passed": True}])


def test_two_stores_writing_one_file_lose_nothing(tmp_path):
    module = tmp_path / "test_x.py"
    stores = [GoldenStore() for _ in range(8)]
    for i, store in enumerate(stores):
        store.put(module, "test_c", f"case{i}", make_case(str(i)))
    threads = [threading.Thread(target=s.flush) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cases = load_golden_file(golden_path(module))["test_c"]
    assert sorted(cases) == [f"case{i}" for i in range(8)]
    text = golden_path(module).read_text()
    assert "sk-must-not-be-written" not in text and '"api_key"' not in text
    assert not [p for p in golden_path(module).parent.iterdir() if p.name != "test_x.json"]  # no temp or lock files


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    module = tmp_path / "test_x.py"
    store = GoldenStore()
    store.put(module, "test_c", "a", make_case("old"))
    store.flush()
    before = golden_path(module).read_text()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files_mod.os, "replace", crash)
    store.put(module, "test_c", "a", make_case("new"))
    with pytest.raises(OutputWriteError, match=r"^cannot write .*test_x.json: disk full$"):
        store.flush()
    assert golden_path(module).read_text() == before
    assert [p.name for p in golden_path(module).parent.iterdir()] == ["test_x.json"]


def test_an_odd_character_in_one_answer_costs_no_golden(tmp_path):
    """A lone surrogate, a NUL and 1 MB in one answer: every golden of both modules is written, losslessly."""
    odd = "bad \udc80 byte \x00 nul " + "z" * (1 << 20)
    store = GoldenStore()
    for module in ("test_a.py", "test_b.py"):
        store.put(tmp_path / module, "test_c", "odd", make_case(odd))
        store.put(tmp_path / module, "test_c", "fine", make_case("caf\u00e9"))
    assert len(store.flush()) == 2
    for module in ("test_a.py", "test_b.py"):
        cases = load_golden_file(golden_path(tmp_path / module))["test_c"]
        assert cases["odd"].samples[0]["text"] == odd and cases["fine"].samples[0]["text"] == "caf\u00e9"
    assert "caf\u00e9" in golden_path(tmp_path / "test_a.py").read_text(encoding="utf-8")  # readable, not escaped


def test_one_unwritable_golden_file_is_one_line_and_the_others_are_written(tmp_path):
    store = GoldenStore()
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "__llm_goldens__").write_text("a file where the golden folder should be")
    store.put(tmp_path / "blocked" / "test_a.py", "test_c", "x", make_case("a"))
    store.put(tmp_path / "test_b.py", "test_c", "x", make_case("b"))
    with pytest.raises(OutputWriteError) as info:
        store.flush()
    assert str(info.value).startswith(f"cannot write {tmp_path / 'blocked' / '__llm_goldens__' / 'test_a.json'}: ")
    assert "\n" not in str(info.value)
    assert store.written == [golden_path(tmp_path / "test_b.py")]
    assert load_golden_file(golden_path(tmp_path / "test_b.py"))["test_c"]["x"].samples[0]["text"] == "b"


@pytest.mark.parametrize("case, detail", [
    ({"prompt_hash": "h", "samples": [{"usage": {}}]}, "sample 1 has no 'text' string"),
    ({"prompt_hash": "h", "samples": [{"text": None}]}, "sample 1 has no 'text' string"),
    ({"prompt_hash": "h", "samples": []}, "'samples' must be a non-empty list"),
    ({"samples": [{"text": "t"}]}, "missing field 'prompt_hash'"),
    ("not a case", ""),
])
def test_a_malformed_golden_names_the_file_and_the_case(tmp_path, case, detail):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"format_version": 1, "contracts": {"test_c": {"cases": {"a": case}}}}))
    with pytest.raises(GoldenFormatError) as info:
        load_golden_file(path)
    assert str(info.value).startswith(f"golden file {path} is malformed at test_c[a] ({detail}")


def test_goldens_get_the_umask_not_0600(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    store = GoldenStore()
    store.put(tmp_path / "test_x.py", "test_c", "a", make_case("t"))
    [path] = store.flush()
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plain_replay_imports_no_heavy_library(suite):
    pytester = suite()
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    probe = pytester.makeconftest("""
import sys
def pytest_unconfigure(config):
    heavy = sorted(m for m in ("litellm", "torch", "transformers", "deepeval", "sentence_transformers", "scipy")
                   if m in sys.modules)
    print("HEAVY:", heavy)
""")
    assert probe.exists()
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["HEAVY: []"])


def test_ini_options_are_equivalent_to_flags(suite):
    pytester = suite()
    pytester.makefile(".toml", pyproject="""
[tool.llmswap]
semantic = false

[tool.pytest.ini_options]
llmswap_incumbent_model = "echo"
llmswap_record = "new"
llmswap_samples = "2"
llmswap_json = "results/out.json"
""")
    pytester.runpytest().assert_outcomes(passed=2)
    data = json.loads((pytester.path / "__llm_goldens__" / "test_suite.json").read_text())
    assert len(data["contracts"]["test_contract"]["cases"]["a"]["samples"]) == 2
    out = json.loads((pytester.path / "results" / "out.json").read_text())
    assert len(out["cases"]) == 2 and out["incumbent"]["spec"] == "echo"
    # The command line wins over the ini file.
    pytester.runpytest("--llmswap-samples", "1", "--llmswap-record", "all").assert_outcomes(passed=2)
    data = json.loads((pytester.path / "__llm_goldens__" / "test_suite.json").read_text())
    assert len(data["contracts"]["test_contract"]["cases"]["a"]["samples"]) == 1


def test_xdist_workers_results_are_merged_on_the_controller(suite):
    pytest.importorskip("xdist")
    pytester = suite(decorator='prompt="Say {{ word }}", cases=[{"word": w} for w in "abcdefgh"]')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=8)
    result = pytester.runpytest_subprocess("-n", "2", "--candidate-model", "echo", "--llmswap-json", "out.json")
    result.assert_outcomes(passed=8)
    out = json.loads((pytester.path / "out.json").read_text())
    assert len(out["cases"]) == 8
    assert out["summaries"]["candidates"]["echo"]["cases"] == 8
    result.stdout.fnmatch_lines(["*8 of 8 cases passed*"])
