"""The golden store: atomic, locked, merged writes and what a plain replay imports."""

import json
import os
import subprocess
import sys
import threading

import pytest

from pytest_llmswap import golden as golden_mod
from pytest_llmswap.golden import GoldenCase, GoldenStore, golden_path, load_golden_file


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

    monkeypatch.setattr(golden_mod.os, "replace", crash)
    store.put(module, "test_c", "a", make_case("new"))
    with pytest.raises(OSError, match="disk full"):
        store.flush()
    assert golden_path(module).read_text() == before
    assert [p.name for p in golden_path(module).parent.iterdir()] == ["test_x.json"]


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
    result.stdout.fnmatch_lines(["*candidate echo: 8 cases, pass rate 100.0%*"])
