"""Keep what a run makes that lives until the process exits out of the cyclic garbage collector's walks.

pytest collects garbage twice as it ends and Python once more as it exits; each full collection walks every
tracked object, and so does every full collection the run triggers along the way. With torch, transformers and
litellm loaded that is millions of objects that are never garbage (modules, checkpoints, collected items): 2.4 s
of a 12 s cached main job; at 10,000 cases the items, results and test reports are the walk (benchmarks/README.md).
"""

from __future__ import annotations

import enum
import gc
import sys

import pytest


class Stage(enum.Enum):
    """Where a contract run freezes what is alive: each of these lives until the process exits."""

    COLLECTED = "the collected items, before planning"
    LOADED = "the models, loaded and timed, before the first test"
    FINISHED = "every result and test report, before the reports are written"


_frozen: set[Stage] = set()


def freeze_heap(config: pytest.Config, stage: Stage) -> None:
    """Move every object alive now into the collector's permanent generation (an O(1) move), once per process
    and stage.

    Objects made later, including every test's garbage, are collected as usual. Once per process, so in-process
    (pytester) sessions do not pin each other's state.
    """
    if stage in _frozen:
        return
    if not _frozen and config.pluginmanager.has_plugin("hypothesispytest") and "hypothesis" not in sys.modules:
        # Its pytest plugin imports hypothesis at the terminal summary anyway. Imported after a freeze,
        # hypothesis's register_random check (gc.get_referrers, blind to frozen objects) would warn about
        # module-level PRNGs that entry points register, such as trio's.
        import hypothesis  # noqa: F401
    _frozen.add(stage)
    gc.freeze()
