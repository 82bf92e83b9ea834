"""What the terminal shows while models are called: a progress line per model, and no library noise.

:class:`Progress` is pure: it writes through a callable and reads a clock, so tests drive it with a list
and a fake clock. :func:`quiet_libraries` keeps transformers' weight-loading bars and torch / torchao
warnings out of the pytest output unless :data:`VERBOSE` is set (the plugin sets it from ``-v``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

VERBOSE = False  # True lets library progress bars and warnings through (``pytest -v``)

# Loggers whose warnings at load time are about the libraries, not about the user's suite.
_NOISY_LOGGERS = ("torch", "torchao", "sentence_transformers", "huggingface_hub", "accelerate")


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Load models inside this block: no library progress bars, warnings or log lines below ERROR.

    Imports torch and transformers (the callers are about to load a model with them): both set their
    loggers' levels when first imported, so the levels are pinned after that, then restored. With
    :data:`VERBOSE` the block changes nothing.
    """
    if VERBOSE:
        yield
        return
    import torch  # noqa: F401 - sets the "torch" logger's level on first import
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hub_bars = not are_progress_bars_disabled()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        disable_progress_bars()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if hub_bars:
            enable_progress_bars()


def prefixed(stream: TextIO, prefix: str) -> Callable[[str], None]:
    """A writer for :class:`Progress` in a pipe that starts each of its lines with ``prefix`` (an xdist worker's
    id, where several processes share one terminal)."""

    def write(text: str) -> None:
        stream.write(prefix + text)
        stream.flush()

    return write


@dataclass
class _Model:
    total: int
    started: float
    done: int = 0
    failed: int = 0
    last_line: float = 0.0  # when the pipe last printed this model
    last_tenth: int = 0  # tenths of ``total`` already printed in a pipe
    closed: bool = False  # its final line is written
    ended: float | None = None  # when its last call finished: its rate and time stop there


class Progress:
    """Calls made per model: done / total, failures, rate and time left.

    On a tty (``tty=True``) one line is rewritten in place with ``\\r``, at most every ``refresh_s``; in a
    pipe (CI logs) each model gets a full line every tenth of its total or every ``pipe_every_s``, and a
    final line. Models with nothing to do print nothing. :meth:`advance` may be called from any thread.
    """

    def __init__(self, write: Callable[[str], None], *, tty: bool, clock: Callable[[], float] = time.monotonic,
                 refresh_s: float = 0.2, pipe_every_s: float = 30.0) -> None:
        self._write, self._tty, self._clock = write, tty, clock
        self._refresh_s, self._pipe_every_s = refresh_s, pipe_every_s
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()
        self._drawn = 0.0  # when the tty line was last drawn
        self._width = 0  # length of the tty line on screen, to blank what a shorter one leaves

    def start(self, model: str, total: int) -> None:
        """Begin counting ``total`` calls of ``model`` (its rate is measured from now)."""
        if total <= 0:
            return
        with self._lock:
            now = self._clock()
            self._models[model] = _Model(total, now, last_line=now)
            if self._tty:
                self._draw(now)

    def advance(self, model: str, ok: bool = True) -> None:
        """Count one finished call of ``model``; ``ok=False`` counts it as failed."""
        with self._lock:
            state = self._models.get(model)
            if state is None or state.done >= state.total:
                return
            state.done += 1
            state.failed += not ok
            now = self._clock()
            if state.done == state.total:
                state.ended = now
            if self._tty:
                if state.done == state.total or now - self._drawn >= self._refresh_s:
                    self._draw(now)
            elif state.done == state.total:
                self._print(model, state, now)
            elif (state.done * 10 // state.total > state.last_tenth
                  or now - state.last_line >= self._pipe_every_s):
                self._print(model, state, now)

    def note(self, line: str) -> None:
        """Write a line of its own, such as the calibration's, once the call counts are finished."""
        with self._lock:
            self._write(line + "\n")

    def finish(self) -> None:
        """Write the last state: the final tty line and a newline, or each unfinished model's line."""
        with self._lock:
            if not self._models:
                return
            now = self._clock()
            if self._tty:
                self._draw(now)
                self._write("\n")
            else:
                for model, state in self._models.items():
                    if not state.closed:
                        self._print(model, state, now)
            self._models.clear()

    def _draw(self, now: float) -> None:
        line = " | ".join(_describe(m, s, now) for m, s in self._models.items())
        self._write("\r" + line.ljust(self._width))
        self._width, self._drawn = len(line), now

    def _print(self, model: str, state: _Model, now: float) -> None:
        self._write(_describe(model, state, now) + "\n")
        state.last_line, state.last_tenth = now, state.done * 10 // state.total
        state.closed = state.done == state.total


def _describe(model: str, state: _Model, now: float) -> str:
    elapsed = (now if state.ended is None else state.ended) - state.started
    rate = state.done / elapsed if elapsed > 0 and state.done else None
    parts = [f"{model}: {state.done:,}/{state.total:,} calls"]
    if state.failed:
        parts.append(f"{state.failed:,} failed")
    if rate is not None:
        parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s")
    if state.done == state.total:
        parts.append(f"done in {_duration(elapsed)}")
    elif rate is not None:
        parts.append(f"~{_duration((state.total - state.done) / rate)} left")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = math.ceil(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
