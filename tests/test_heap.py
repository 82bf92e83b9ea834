"""A run freezes what it loaded before its tests (benchmarks/README.md: the cached main job), and what it made
once its reports are written, and only that."""

from __future__ import annotations

import re

import pytest

CYCLE = """
    import gc, weakref

    class Node:
        pass

    node = Node()
    node.self = node  # a cycle: only the cyclic collector frees it
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None, "the test's own cyclic garbage was not collected"
    print("FROZEN", gc.get_freeze_count())
"""

# Printed after every other unconfigure hook: what the collections of pytest's own cleanup and of the exit walk.
AT_EXIT = """
import gc, pytest

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    print("AT EXIT FROZEN", gc.get_freeze_count())
"""


def test_a_contract_run_freezes_its_loaded_heap_and_still_collects_the_tests_garbage(suite) -> None:
    pytester = suite(body=CYCLE)
    pytester.makeconftest(AT_EXIT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--incumbent-model", "echo",
                                           "--llmswap-record", "all", "--candidate-model", "echo")
    result.assert_outcomes(passed=4)
    frozen = [int(n) for n in re.findall(r"(?<!EXIT )FROZEN (\d+)", result.stdout.str())]
    assert len(frozen) >= 4 and min(frozen) > 10_000  # the body runs on goldens too (flips)
    # The run's results, reports and items, alive until the process exits, are frozen before pytest's cleanup.
    at_exit = int(re.search(r"AT EXIT FROZEN (\d+)", result.stdout.str()).group(1))
    assert at_exit > max(frozen)
    # hypothesis is imported by its own plugin at the end of every run; after a freeze its register_random
    # check cannot see frozen referrers, and warned about trio's module-level PRNG before the plugin imported
    # hypothesis first.
    assert "HypothesisWarning" not in result.stdout.str() and "warning" not in result.outlines[-1]


def test_a_suite_without_contracts_keeps_the_collector_as_it_was(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n" + CYCLE)
    pytester.makeconftest(AT_EXIT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    assert re.findall(r"FROZEN (\d+)", result.stdout.str()) == ["0", "0"]
