"""The CI example as written: triggers, concurrency, extras, the key named once, a fork without the key."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
TEXT = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
WORKFLOW = yaml.safe_load(TEXT)
JOBS = WORKFLOW["jobs"]


def test_cache_is_shared_from_pushes_to_main_and_runs_do_not_race():
    triggers = WORKFLOW[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"] == {"branches": ["main"]} and "pull_request" in triggers
    cache = next(s for s in JOBS["suite"]["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["restore-keys"].strip() + "${{ github.run_id }}-${{ github.run_attempt }}" == \
        cache["with"]["key"]
    assert WORKFLOW["concurrency"] == {"group": "llmswap-${{ github.event.pull_request.number || github.ref }}",
                                       "cancel-in-progress": True}


def test_the_extras_a_contract_needs_are_installed():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(WORKFLOW["env"]["EXTRAS"].split(",")) <= set(extras) and "semantic" in WORKFLOW["env"]["EXTRAS"]
    install = next(s["run"] for s in JOBS["suite"]["steps"] if "pip install -e" in s.get("run", ""))
    assert '"pytest-llmswap[$EXTRAS]"' in install


def test_the_key_variable_is_named_once():
    name = WORKFLOW["env"]["API_KEY_NAME"]
    code = "\n".join(line.split(" #")[0] for line in TEXT.splitlines() if not line.lstrip().startswith("#"))
    assert code.count(name) == 1
    assert set(re.findall(r"secrets[.\[][\w.\]]*", code)) == {"secrets[env.API_KEY_NAME]"}
    replay = next(s for s in JOBS["suite"]["steps"] if s.get("name") == "Replay the suite on the candidate")
    first = replay["run"].splitlines()[0]
    env = dict(os.environ, API_KEY_NAME=name, KEY="sk-secret")
    shown = subprocess.run(["bash", "-c", f"{first}; printenv {name}"], env=env, capture_output=True, text=True)
    assert shown.stdout.strip() == "sk-secret"


@pytest.mark.parametrize("key", ["", "sk-secret"])
def test_a_fork_without_the_key_gets_a_summary_and_a_skipped_suite(tmp_path, key):
    check = JOBS["key"]["steps"][0]
    env = dict(os.environ, KEY=key, API_KEY_NAME=WORKFLOW["env"]["API_KEY_NAME"], CANDIDATE="anthropic/x",
               GITHUB_OUTPUT=str(tmp_path / "output"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary"))
    done = subprocess.run(["bash", "-e", "-c", check["run"]], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    output = (tmp_path / "output").read_text()
    if key:
        assert output == "present=true\n" and not (tmp_path / "summary").exists()
    else:
        assert output == "present=false\n"
        summary = (tmp_path / "summary").read_text()
        assert summary.startswith("### llmswap: skipped\n\n`$ANTHROPIC_API_KEY` is not available to this run")
        assert "`anthropic/x` was not called" in summary
        assert done.stdout.startswith("::notice title=llmswap skipped::$ANTHROPIC_API_KEY is not available")
    # Every job that would call the candidate or report on it waits for the key and is skipped without it.
    assert JOBS["suite"]["if"] == "${{ needs.key.outputs.present == 'true' }}"
    assert "needs.key.outputs.present == 'true'" in JOBS["report"]["if"] and "key" in JOBS["report"]["needs"]
