"""The ``llmswap`` command: report, merge, export, and its one-line errors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_llmswap.verdict.aggregate import summarize
from pytest_llmswap.cli import main
from pytest_llmswap.results import RESULTS_FORMAT_VERSION, RunResults
from synthetic import synthetic_results


def write(path: Path, data) -> str:
    path.write_text(json.dumps(data if isinstance(data, dict) else data.to_dict()), encoding="utf-8")
    return str(path)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("llmswap: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


@pytest.fixture(scope="module")
def single() -> RunResults:
    return synthetic_results(120)


def shard(results: RunResults, cases) -> RunResults:
    part = copy.deepcopy(results)
    part.cases = copy.deepcopy(cases)
    part.summaries = summarize(part)
    return part


def test_report_rerenders_html_and_markdown(tmp_path, capsys, single):
    src = write(tmp_path / "results.json", single)
    code, err = run_cli(capsys, "report", src, "--markdown", str(tmp_path / "pr.md"))
    assert code == 0, err
    assert (tmp_path / "results.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (tmp_path / "pr.md").read_text(encoding="utf-8").startswith("**pytest-llmswap:** ")
    code, err = run_cli(capsys, "report", src, "-o", str(tmp_path / "sub" / "r.html"))
    assert code == 0 and (tmp_path / "sub" / "r.html").exists()


@pytest.mark.parametrize("version, summaries", [
    (2, {"candidates": {"gone": {"regression_rate": 0.5}}}),  # the net regression rate
    (3, {"candidates": {"gone": {"contracts": {"c": {"mean_edit": 0.5, "mean_semantic": None}}}}}),
])
def test_an_older_file_is_read_with_its_verdicts_recomputed(tmp_path, capsys, single, version, summaries):
    # Older summaries (and version 2's not_recommended_when setting) are dropped and computed as this version
    # computes them, so `llmswap report` renders an old file.
    old = single.to_dict()
    old.update(format_version=version, summaries=summaries, settings={**old["settings"], "not_recommended_when": "both"})
    read = RunResults.from_dict(json.loads(json.dumps(old)))
    assert read.format_version == RESULTS_FORMAT_VERSION and "not_recommended_when" not in read.settings
    assert read.summaries == summarize(single)
    code, err = run_cli(capsys, "report", write(tmp_path / "old.json", old), "-o", str(tmp_path / "old.html"))
    assert code == 0, err


def test_merge_of_two_halves_equals_the_single_run(tmp_path, capsys, single):
    half = len(single.cases) // 2
    # The overlapping case appears in both shards (a retried CI job): an identical duplicate is dropped.
    a = write(tmp_path / "a.json", shard(single, single.cases[:half + 1]))
    b = write(tmp_path / "b.json", shard(single, single.cases[half:]))
    code, err = run_cli(capsys, "merge", a, b, "-o", str(tmp_path / "all.json"))
    assert code == 0, err
    merged = RunResults.from_dict(json.loads((tmp_path / "all.json").read_text()))
    assert [c.__dict__ for c in merged.cases] == [c.__dict__ for c in single.cases]
    assert merged.summaries == summarize(single)
    assert [m.name for m in merged.candidates] == [m.name for m in single.candidates]
    assert [c.id for c in merged.contracts] == [c.id for c in single.contracts]


def test_merge_unions_models_and_contracts_and_keeps_goldens_unused_by_every_shard(tmp_path, capsys, single):
    first, second = shard(single, single.cases[:30]), shard(single, single.cases[30:])
    first.candidates, first.contracts = single.candidates[:1], single.contracts[:2]
    first.unused_goldens, second.unused_goldens = ["g1", "g2"], ["g2", "g3"]
    first.stale_goldens, second.stale_goldens = ["s1"], ["s2", "s1"]
    code, err = run_cli(capsys, "merge", write(tmp_path / "a.json", first), write(tmp_path / "b.json", second),
                        "-o", str(tmp_path / "all.json"))
    assert code == 0, err
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [m["name"] for m in merged["candidates"]] == [m.name for m in single.candidates]
    assert len(merged["contracts"]) == len(single.contracts)
    assert merged["unused_goldens"] == ["g2"] and merged["stale_goldens"] == ["s1", "s2"]


def test_merge_missing_ok_merges_the_shards_that_exist_and_names_the_rest(tmp_path, capsys, single):
    a = write(tmp_path / "a.json", shard(single, single.cases[:40]))
    missing = str(tmp_path / "crashed.json")
    code, err = run_cli(capsys, "merge", a, missing, "-o", str(tmp_path / "all.json"))
    assert_one_line_error(code, err, "cannot read", "crashed.json")
    code, err = run_cli(capsys, "merge", "--missing-ok", a, missing, "-o", str(tmp_path / "all.json"))
    assert code == 0 and f"llmswap: missing shard: {missing}" in err and "merged 1 files, 40 case rows" in err
    assert len(json.loads((tmp_path / "all.json").read_text())["cases"]) == 40
    code, err = run_cli(capsys, "merge", "--missing-ok", missing, "-o", str(tmp_path / "none.json"))
    assert code == 2 and "every shard is missing" in err and not (tmp_path / "none.json").exists()


def test_merge_conflicting_duplicate(tmp_path, capsys, single):
    other = copy.deepcopy(single)
    other.cases[5] = replace(other.cases[5], candidate_passed=not other.cases[5].candidate_passed)
    code, err = run_cli(capsys, "merge", write(tmp_path / "a.json", single), write(tmp_path / "b.json", other),
                        "-o", str(tmp_path / "all.json"))
    c = single.cases[5]
    assert_one_line_error(code, err, f"case {c.contract}[{c.case_id}] on {c.candidate}", "a.json", "b.json",
                          "different results")
    assert not (tmp_path / "all.json").exists()


def test_merge_different_incumbents(tmp_path, capsys, single):
    other = copy.deepcopy(single)
    other.incumbent.resolved_id = "gpt-4o-2024-11-20"
    code, err = run_cli(capsys, "merge", write(tmp_path / "a.json", single), write(tmp_path / "b.json", other),
                        "-o", str(tmp_path / "all.json"))
    assert_one_line_error(code, err, "disagree on the incumbent")


def test_merge_different_settings(tmp_path, capsys, single):
    other = copy.deepcopy(single)
    other.settings["hourly_rate"] = 150.0
    code, err = run_cli(capsys, "merge", write(tmp_path / "a.json", single), write(tmp_path / "b.json", other),
                        "-o", str(tmp_path / "all.json"))
    assert_one_line_error(code, err, "disagree on setting 'hourly_rate'")


def test_merge_different_format_versions(tmp_path, capsys, single):
    newer = dict(single.to_dict(), format_version=99)
    code, err = run_cli(capsys, "merge", write(tmp_path / "a.json", single), write(tmp_path / "b.json", newer),
                        "-o", str(tmp_path / "all.json"))
    assert_one_line_error(code, err, "different format versions", f"a.json: {RESULTS_FORMAT_VERSION}", "b.json: 99")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "is not JSON"),
    ('{"cases": []}', "not a pytest-llmswap results file"),
    ('{"format_version": 99, "created_at": "x"}', "format version 99 is not supported"),
    ('{"format_version": 2}', "malformed results file"),
])
@pytest.mark.parametrize("command", ["report", "merge"])
def test_bad_results_files(tmp_path, capsys, content, message, command):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    argv = ["report", str(path)] if command == "report" else ["merge", str(path), "-o", str(tmp_path / "o.json")]
    code, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, message, str(path))


def golden_file(root: Path, module: str, contracts: dict) -> Path:
    path = root / "tests" / "__llm_goldens__" / f"{module}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format_version": 1, "contracts": contracts}), encoding="utf-8")
    return path


def golden_case(system: str, user: str, samples: list[tuple[str, bool | None]]) -> dict:
    return {"prompt_hash": "h", "variables": {}, "messages": [["system", system], ["user", user]], "model": "m",
            "params": {}, "samples": [{"text": t, **({} if p is None else {"passed": p})} for t, p in samples]}


@pytest.fixture
def goldens(tmp_path) -> Path:
    golden_file(tmp_path, "test_b", {"test_sum": {"cases": {
        "c1": golden_case("Sum up.", "Long text", [("Short.", True)])}}})
    golden_file(tmp_path, "test_a", {"test_triage": {"cases": {
        "t2": golden_case("Triage.", "Refund?", [("billing", True), ("bill", False), ("billing", None)]),
        "t1": golden_case("Triage.", "Crash!", [("bug", True)])}}})
    (tmp_path / "tests" / "other.json").write_text("{}")  # not in __llm_goldens__: ignored
    return tmp_path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_chat_jsonl(goldens, tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    code, err = run_cli(capsys, "export", "--goldens", str(goldens), "--format", "chat-jsonl", "-o", str(out))
    assert code == 0, err
    lines = read_jsonl(out)
    assert lines[0] == {"messages": [{"role": "system", "content": "Triage."}, {"role": "user", "content": "Crash!"},
                                     {"role": "assistant", "content": "bug"}],
                        "metadata": {"contract": "tests/test_a.py::test_triage", "case_id": "t1",
                                     "samples": 1}}
    # The two identical "billing" samples of t2 are one example that stands for both.
    assert [(line["metadata"]["case_id"], line["messages"][-1]["content"], line["metadata"]["samples"])
            for line in lines] == [("t1", "bug", 1), ("t2", "billing", 2), ("t2", "bill", 1), ("c1", "Short.", 1)]
    assert "wrote 4 example(s) (5 golden sample(s))" in err


def test_export_passed_only(goldens, tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    code, _ = run_cli(capsys, "export", "--goldens", str(goldens), "-o", str(out), "--passed-only")
    assert code == 0
    assert [line["messages"][-1]["content"] for line in read_jsonl(out)] == ["bug", "billing", "Short."]
    assert [line["metadata"]["samples"] for line in read_jsonl(out)] == [1, 1, 1]  # the unchecked one is left out


def test_export_errors(tmp_path, capsys):
    code, err = run_cli(capsys, "export", "--goldens", str(tmp_path), "-o", str(tmp_path / "t.jsonl"))
    assert_one_line_error(code, err, "no golden files")
    code, err = run_cli(capsys, "export", "--goldens", str(tmp_path / "missing"), "-o", str(tmp_path / "t.jsonl"))
    assert_one_line_error(code, err, "no such directory")
    bad = golden_file(tmp_path, "test_x", {})
    bad.write_text("{oops")
    code, err = run_cli(capsys, "export", "--goldens", str(tmp_path), "-o", str(tmp_path / "t.jsonl"))
    assert_one_line_error(code, err, "is not valid JSON", str(bad))


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--goldens", "x", "--format", "csv", "-o", "y"])
    assert exc.value.code == 2
    assert "invalid choice: 'csv'" in capsys.readouterr().err


def test_console_script_starts_without_heavy_imports():
    code = ("import sys, pytest_llmswap.cli as c; c.build_parser(); "
            "print([m for m in ('litellm', 'numpy', 'scipy', 'torch', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ci_example_uses_valid_llmswap_commands():
    import shlex

    from pytest_llmswap.cli import build_parser

    workflow = Path(__file__).parents[1] / "examples" / "ci" / "github-actions.yml"
    commands = [line.strip() for line in workflow.read_text().splitlines() if line.strip().startswith("llmswap ")]
    assert len(commands) == 2
    for command in commands:
        words = shlex.split(command.replace("$shards", "results/shard-0.json results/shard-1.json"))
        words = words[:next((i for i, w in enumerate(words) if w in ("2>", "||", ">", ";")), len(words))]
        build_parser().parse_args(words[1:])  # exits 2 on an unknown subcommand or option


def test_ci_example_merges_the_shards_that_exist_and_names_a_crashed_one(tmp_path, single):
    """The report job's shell, run as written: one of two shards crashed; the summary says so and the job fails."""
    import os
    import shutil

    import yaml

    if not shutil.which("llmswap"):
        pytest.skip("the llmswap console script is not on PATH")
    steps = yaml.safe_load((Path(__file__).parents[1] / "examples" / "ci" / "github-actions.yml").read_text())
    steps = steps["jobs"]["report"]["steps"]
    merge = next(s["run"] for s in steps if s.get("name", "").startswith("Merge"))
    check = next(s["run"] for s in steps if s.get("name", "").startswith("Fail"))
    (tmp_path / "results").mkdir()
    write(tmp_path / "results" / "shard-0.json", single)
    (tmp_path / "results" / "exit-0").write_text("0\n")
    env = dict(os.environ, SHARDS="2", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    done = subprocess.run(["bash", "-e", "-c", merge], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "llmswap.md").read_text()
    assert text.startswith("> [!WARNING]\n> Shard results missing (the shard crashed): `results/shard-1.json`")
    assert "**pytest-llmswap:**" in text and (tmp_path / "llmswap-report.html").exists()
    failed = subprocess.run(["bash", "-e", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "shard 1 left no results" in failed.stdout


def test_results_file_holds_each_cases_golden_once_and_reads_back_losslessly(single):
    data = single.to_dict()
    refs = {c["golden"] for c in data["cases"]}
    assert all(isinstance(r, str) for r in refs) and set(data["golden_samples"]) == refs
    assert len(refs) < len(data["cases"])  # three candidate rows share each case's golden
    assert RunResults.from_dict(json.loads(json.dumps(data))).cases == single.cases
