import os
import sys

# Under pytest-xdist the workers share the cores: each worker's torch, MKL and OpenBLAS take their share of them
# (one thread each with -n 3 on 2 cores). Left at their default (every core each), the OpenMP threads of two
# workers, and of the subprocesses they start, wait on each other: the local-model tests ran 3-6 times slower
# (tests/test_hf_backend.py: 93 s instead of 15 s beside one busy process). Without xdist, OpenMP threads that
# wait sleep instead of spinning, which makes the same difference on a machine that runs anything else (23 s
# instead of 10 s for that file). Set before numpy is imported, and inherited by every subprocess a test starts.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy  # noqa: F401 - loaded once here: pytester's in-process runs cannot re-import C extensions
import scipy.stats  # noqa: F401
# A contract run freezes the heap (pytest_llmswap/run/heap.py) and imports hypothesis first; pytester's in-process
# runs would drop it from sys.modules, and hypothesis re-imported over a frozen heap warns about trio's PRNG.
import hypothesis  # noqa: F401
import pytest

pytest_plugins = ["pytester"]

# Nothing in the test suite may reach the network (litellm's price map: pytest_llmswap/__init__.py).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The weights digests of the checkpoints the tests train go to a folder of this run, not the user's cache
# (pytest_llmswap/models/weights.py); one folder for every xdist worker and subprocess of the run.
if "LLMSWAP_CACHE_HOME" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["LLMSWAP_CACHE_HOME"] = tempfile.mkdtemp(prefix="llmswap-test-cache-")
    atexit.register(shutil.rmtree, os.environ["LLMSWAP_CACHE_HOME"], ignore_errors=True)  # the process that made it

# Tests rewrite modules that their inner runs import (an application pointed at another server). Python takes a
# .pyc as current when its source has the same size and modification second, so a rewrite within the second
# would run the old code; no process of the suite writes bytecode (in-process runs, and subprocesses by the
# variable).
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


@pytest.fixture
def suite(pytester: pytest.Pytester):
    """Write a test module with one contract; returns a function taking the decorator arguments and body."""

    def make(decorator: str = 'prompt="Say {{ word }}", cases=[{"id": "a", "word": "hi"}, {"id": "b", "word": "yo"}]',
             body: str = 'assert case["word"] in output.text', name: str = "test_suite") -> pytest.Pytester:
        # The sentence encoder (torch) cannot load inside pytester's in-process runs; semantic drift is
        # tested in its own modules and in subprocess runs.
        pytester.makefile(".toml", pyproject="[tool.llmswap]\nsemantic = false\n")
        pytester.makepyfile(**{name: f"""
from pytest_llmswap import llm_contract

@llm_contract({decorator})
def test_contract(output, case, golden):
    {body}
"""})
        return pytester

    return make


@pytest.fixture(scope="session")
def litellm_loaded():
    """Import litellm once in this process: an inner pytester run cannot re-import its C extensions."""
    from pytest_llmswap.models.litellm_backend import import_litellm

    return import_litellm()


def _seconds(item: pytest.Item) -> float:
    """What a slow test takes alone on an idle machine, as its marker says (``slow(seconds=N)``), else 2 s."""
    return float(item.get_closest_marker("slow").kwargs.get("seconds", 2))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, start every worker on slow tests, longest first, so that none is left running one alone at
    the end.

    `--dist worksteal` hands the first worker the first share of the collection, the next the next share, and a
    worker that runs out steals from the end of another's queue. So each share starts with slow tests (a module's
    slow tests kept together, on one worker, for their module-scoped fixtures; the modules with the longest tests
    first, each to the share with the fewest seconds so far) and ends with quick ones, which are the ones stolen
    and the ones that run last. Every test still runs; only the order changes."""
    if _WORKERS < 2:
        return
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            groups.setdefault(item.nodeid.split("::")[0], []).append(item)
    if not groups:
        return
    slow_ids = {id(item) for group in groups.values() for item in group}
    quick = iter([item for item in items if id(item) not in slow_ids])
    heads: list[list[pytest.Item]] = [[] for _ in range(_WORKERS)]
    for group in sorted(groups.values(), key=lambda g: max(map(_seconds, g)), reverse=True):
        min(heads, key=lambda head: sum(map(_seconds, head))).extend(sorted(group, key=_seconds, reverse=True))
    ordered: list[pytest.Item] = []
    left = len(items)
    for worker, head in enumerate(heads):
        share = left // (_WORKERS - worker)  # as xdist's worksteal splits what is left among the idle workers
        left -= share
        ordered += head + [item for _, item in zip(range(share - len(head)), quick)]
    items[:] = ordered + list(quick)
