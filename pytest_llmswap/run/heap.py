"""Keep what a run loads before its tests out of the cyclic garbage collector's walks.

pytest collects garbage twice as it ends and Python once more as it exits; each full collection walks every
tracked object. With torch, transformers and litellm loaded that is millions of objects that are never
garbage (modules, checkpoints, collected items): 2.4 s of a 12 s cached main job (benchmarks/README.md).
"""

from __future__ import annotations

import gc
import sys

import pytest

_frozen = False


def freeze_loaded_heap(config: pytest.Config) -> None:
    """Move every object alive now into the collector's permanent generation, once per process.

    Called when the models are ready and before the first test: objects made later, including every test's
    garbage, are collected as usual. Once per process, so in-process (pytester) sessions do not pin each
    other's state.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    if config.pluginmanager.has_plugin("hypothesispytest") and "hypothesis" not in sys.modules:
        # Its pytest plugin imports hypothesis at the terminal summary anyway. Imported after the freeze,
        # hypothesis's register_random check (gc.get_referrers, blind to frozen objects) would warn about
        # module-level PRNGs that entry points register, such as trio's.
        import hypothesis  # noqa: F401
    gc.freeze()
