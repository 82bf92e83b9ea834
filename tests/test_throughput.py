"""GPU-hour throughput: measured side by side, rounds rotated, medians; one measurement per checkpoint."""

from __future__ import annotations

import pytest

from pytest_llmswap.models.throughput import measure_throughput
from pytest_llmswap.prepare import throughputs
from pytest_llmswap.types import ModelCallError, ModelSpec, Prices, Request, Response, Usage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """Answers each request with ``tokens`` output tokens, taking ``seconds`` per request on the fake clock."""

    def __init__(self, clock: Clock, tokens: int, seconds: float, slow_calls: tuple[int, ...] = ()) -> None:
        self.clock, self.tokens, self.seconds, self.slow_calls = clock, tokens, seconds, slow_calls
        self.calls = 0
        self.log: list[str] = []

    def complete(self, requests, on_answer=None):
        self.calls += 1
        # A burst of load on the machine: this call takes ten times as long.
        self.clock.now += self.seconds * len(requests) * (10 if self.calls in self.slow_calls else 1)
        return [Response("x", usage=Usage(output_tokens=self.tokens)) for _ in requests]


class FakeExecutor:
    """The executor's ``backend(spec)``: one FakeBackend per model identity, made when first asked for."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.backends: dict[str, FakeBackend] = {}

    def backend(self, s: ModelSpec) -> FakeBackend:
        return self.backends.setdefault(s.identity, FakeBackend(self.clock, 5, 0.05))


def spec(name: str, gpu_hour: float | None = 1.0, target: str = "m") -> ModelSpec:
    return ModelSpec(name, "hf", target, prices=Prices(gpu_hour_usd=gpu_hour) if gpu_hour is not None else None)


def test_the_fastest_timed_round_counts_not_the_warm_up_nor_a_slowed_round():
    clock = Clock()
    # The warm-up and two of the three timed rounds are slowed by load: a median would take a slowed one.
    fast = FakeBackend(clock, tokens=10, seconds=0.1, slow_calls=(1, 3, 4))
    slow = FakeBackend(clock, tokens=10, seconds=0.4)
    reqs = [Request(spec("a"), (("user", "q"),))] * 4
    measured = measure_throughput({"a": (fast, reqs), "b": (slow, reqs)}, rounds=3, clock=clock)
    assert fast.calls == slow.calls == 4  # one warm-up call and three timed rounds
    # 40 tokens in 0.4 s and in 1.6 s: a round slowed by load does not count
    assert measured == {"a": pytest.approx(100.0), "b": pytest.approx(25.0)}


def test_rounds_start_with_a_different_model_each_time():
    clock = Clock()
    order: list[str] = []

    class Logged(FakeBackend):
        def __init__(self, name: str) -> None:
            super().__init__(clock, 1, 0.1)
            self.name = name

        def complete(self, requests, on_answer=None):
            order.append(self.name)
            return super().complete(requests)

    reqs = [Request(spec("a"), (("user", "q"),))]
    measure_throughput({n: (Logged(n), reqs) for n in "abc"}, rounds=2, clock=clock)
    assert order == list("abc") + list("bca") + list("cab")


def test_one_checkpoint_under_two_names_is_measured_once_and_unpriced_models_not_at_all():
    executor = FakeExecutor()
    twins = [spec("teacher"), spec("teacher-copy"), spec("api", gpu_hour=None, target="other")]
    requests = [Request(twins[0], (("user", f"q{i}"),)) for i in range(20)]
    answers = {r.key: Response("x") for r in requests}
    measured = throughputs(executor, twins, requests, answers)  # type: ignore[arg-type]
    assert set(measured) == {"teacher", "teacher-copy"} and measured["teacher"] == measured["teacher-copy"]
    assert len(executor.backends) == 1 and next(iter(executor.backends.values())).calls == 4


def test_a_model_whose_every_call_failed_is_not_called_again_for_timing():
    executor = FakeExecutor()
    down, up, incumbent = spec("down", target="d"), spec("up", target="u"), spec("inc", target="i")
    requests = [Request(m, (("user", f"q{i}"),)) for m in (down, up) for i in range(3)]
    answers = {r.key: (ModelCallError("503") if r.model is down else Response("x")) for r in requests}
    measured = throughputs(executor, [incumbent, down, up], requests, answers)  # type: ignore[arg-type]
    assert set(measured) == {"inc", "up"}  # the replayed incumbent made no call in this run: it is still timed
    assert down.identity not in executor.backends
