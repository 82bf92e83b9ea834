"""The run core, without pytest: each stage a module whose functions take and return typed values.

- :mod:`.keys` - which item is which (``ItemKey``), what was asked for (``RunOptions``), ``RunError``
- :mod:`.state` - what the stages share (``RunState``), the ``Plan`` and the ``Answers``
- :mod:`.plan` - the items of each contract, and every request the selected items need
- :mod:`.execute` - the model calls, then throughput, logit drift and embeddings for the whole run
- :mod:`.judge` - one item judged into an outcome (:mod:`.outcome`); ``plugin.py`` alone turns it into pytest's
- :mod:`.finish` - goldens written, results built, reports written: a ``RunEnd``
"""
