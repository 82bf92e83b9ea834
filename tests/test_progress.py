"""The per-model progress display, driven by a fake clock and a list writer: on a tty and in a pipe."""

from __future__ import annotations

import threading

import pytest

from pytest_llmswap.run.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, *, tty: bool) -> tuple[Progress, list[str]]:
    out: list[str] = []
    return Progress(out.append, tty=tty, clock=clock), out


def test_pipe_prints_a_line_every_tenth_and_a_final_line(clock: Clock) -> None:
    progress, out = make(clock, tty=False)
    progress.start("gpt", 100)
    for i in range(100):
        clock.now += 0.5
        progress.advance("gpt", ok=i % 25 != 0)
    progress.finish()
    assert len(out) == 10 and all(line.endswith("\n") and "\r" not in line for line in out)
    assert out[0] == "gpt: 10/100 calls, 1 failed, 2/s, ~45s left\n"
    assert out[4] == "gpt: 50/100 calls, 2 failed, 2/s, ~25s left\n"
    assert out[-1] == "gpt: 100/100 calls, 4 failed, 2/s, done in 50s\n"


def test_pipe_prints_every_30_seconds_between_tenths(clock: Clock) -> None:
    progress, out = make(clock, tty=False)
    progress.start("slow", 1000)
    for _ in range(5):
        clock.now += 20
        progress.advance("slow")
    assert out == ["slow: 2/1,000 calls, 0.05/s, ~5h32m left\n", "slow: 4/1,000 calls, 0.05/s, ~5h32m left\n"]
    progress.finish()
    assert out[-1] == "slow: 5/1,000 calls, 0.05/s, ~5h31m left\n"  # an unfinished model's last state


def test_tty_rewrites_one_line_per_refresh_for_all_models(clock: Clock) -> None:
    progress, out = make(clock, tty=True)
    progress.start("a", 4)
    progress.start("b", 2)
    out.clear()
    clock.now += 0.125
    progress.advance("a")  # within the refresh interval (0.2 s): not drawn
    assert out == []
    clock.now += 0.125
    progress.advance("b", ok=False)
    assert out == ["\ra: 1/4 calls, 4/s, ~1s left | b: 1/2 calls, 1 failed, 4/s, ~1s left"]
    clock.now += 0.0625
    progress.advance("b")  # a model that finishes is drawn at once
    assert out[-1] == "\ra: 1/4 calls, 3.2/s, ~1s left | b: 2/2 calls, 1 failed, 6.4/s, done in 1s"
    assert all("\n" not in line for line in out)
    progress.finish()
    assert out[-1] == "\n"


def test_tty_blanks_what_a_shorter_line_leaves(clock: Clock) -> None:
    progress, out = make(clock, tty=True)
    progress.start("m", 10)
    clock.now += 10
    progress.advance("m")
    clock.now += 0.5
    progress.advance("m")
    assert out[-2] == "\rm: 1/10 calls, 0.1/s, ~1m30s left"
    assert out[-1] == "\rm: 2/10 calls, 0.19/s, ~42s left" + " "  # covers the longer line before it


def test_nothing_is_printed_when_there_is_nothing_to_do(clock: Clock) -> None:
    for tty in (True, False):
        progress, out = make(clock, tty=tty)
        progress.start("cached", 0)
        progress.advance("cached")
        progress.finish()
        assert out == []


def test_advance_is_thread_safe(clock: Clock) -> None:
    progress, out = make(clock, tty=False)
    progress.start("m", 8000)
    threads = [threading.Thread(target=lambda: [progress.advance("m") for _ in range(1000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[-1].startswith("m: 8,000/8,000 calls")
    assert [line.split("/")[0] for line in out] == [f"m: {n:,}" for n in range(800, 8001, 800)]
