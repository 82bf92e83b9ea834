"""GPU-hour throughput: measured side by side, rounds rotated, the fastest counts; one calibration per checkpoint
and hardware, stored in the cache folder and reused."""

from __future__ import annotations

import pytest

import shutil

from hf_fixtures import TEACHER, hf_spec
from pytest_llmswap.models.throughput import Timed, measure_throughput
from pytest_llmswap.models.throughput_store import STORE_NAME, ThroughputStore
from pytest_llmswap.run.prepare import throughputs
from pytest_llmswap.results import ModelInfo
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
    """The executor's ``backend(spec)``: one FakeBackend per model identity, made when first asked for, taking
    ``seconds[target]`` per request (0.05 s by default) on its fake clock."""

    def __init__(self, **seconds: float) -> None:
        self.clock = Clock()
        self.seconds = seconds
        self.backends: dict[str, FakeBackend] = {}

    def backend(self, s: ModelSpec) -> FakeBackend:
        return self.backends.setdefault(s.identity, FakeBackend(self.clock, 5, self.seconds.get(s.target, 0.05)))

    @property
    def calls(self) -> int:
        return sum(b.calls for b in self.backends.values())


def calibrate(executor: FakeExecutor, specs: list[ModelSpec], store: ThroughputStore | None, *,
              recalibrate: bool = False, monkeypatch: pytest.MonkeyPatch | None = None):
    """``throughputs`` over one prompt per spec, every call answered; returns (calibrations, warnings, lines)."""
    if monkeypatch is not None:  # time on the executor's fake clock, not the thread's CPU time
        monkeypatch.setattr("pytest_llmswap.run.prepare._clock", lambda spec: executor.clock)
    requests = [Request(s, (("user", f"q{i}"),)) for i, s in enumerate(specs)]
    lines: list[str] = []
    measured, warnings = throughputs(executor, specs[0], specs, requests,  # type: ignore[arg-type]
                                     {r.key: Response("x") for r in requests}, store=store,
                                     recalibrate=recalibrate, say=lines.append)
    return measured, warnings, lines


def spec(name: str, gpu_hour: float | None = 1.0, target: str = "m") -> ModelSpec:
    return ModelSpec(name, "hf", target, prices=Prices(gpu_hour_usd=gpu_hour) if gpu_hour is not None else None)


def test_the_fastest_timed_round_counts_not_the_warm_up_nor_a_slowed_round():
    clock = Clock()
    # The warm-up and two of the three timed rounds are slowed by load: a median would take a slowed one.
    fast = FakeBackend(clock, tokens=10, seconds=0.1, slow_calls=(1, 3, 4))
    slow = FakeBackend(clock, tokens=10, seconds=0.4)
    reqs = [Request(spec("a"), (("user", "q"),))] * 4
    rounds = measure_throughput({"a": Timed(fast, reqs, clock), "b": Timed(slow, reqs, clock)}, rounds=3)
    assert fast.calls == slow.calls == 4  # one warm-up call and three timed rounds
    # 40 tokens in 0.4 s and in 1.6 s: a round slowed by load is kept (the spread) but the fastest counts
    assert rounds == {"a": pytest.approx([100.0, 10.0, 10.0]), "b": pytest.approx([25.0] * 3)}


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
    measure_throughput({n: Timed(Logged(n), reqs, clock) for n in "abc"}, rounds=2)
    assert order == list("abc") + list("bca") + list("cab")


def test_one_checkpoint_under_two_names_is_measured_once_and_unpriced_models_not_at_all():
    executor = FakeExecutor()
    twins = [spec("teacher"), spec("teacher-copy"), spec("api", gpu_hour=None, target="other")]
    requests = [Request(twins[0], (("user", f"q{i}"),)) for i in range(20)]
    answers = {r.key: Response("x") for r in requests}
    measured, _ = throughputs(executor, twins[0], twins, requests, answers, store=None)  # type: ignore[arg-type]
    assert set(measured) == {"teacher", "teacher-copy"} and measured["teacher"] == measured["teacher-copy"]
    assert len(executor.backends) == 1 and next(iter(executor.backends.values())).calls == 6  # warm-up, 5 rounds


def test_a_model_whose_every_call_failed_is_not_called_again_for_timing():
    executor = FakeExecutor()
    down, up, incumbent = spec("down", target="d"), spec("up", target="u"), spec("inc", target="i")
    requests = [Request(m, (("user", f"q{i}"),)) for m in (down, up) for i in range(3)]
    answers = {r.key: (ModelCallError("503") if r.model is down else Response("x")) for r in requests}
    measured, _ = throughputs(executor, incumbent, [incumbent, down, up], requests, answers,  # type: ignore[arg-type]
                              store=None)
    assert set(measured) == {"inc", "up"}  # the replayed incumbent made no call in this run: it is still timed
    assert down.identity not in executor.backends


def local(name: str, folder) -> ModelSpec:
    return ModelSpec(name, "hf", str(folder), prices=Prices(gpu_hour_usd=0.4))


def test_a_stored_calibration_is_reused_without_timing_and_the_run_says_so(tmp_path):
    store = ThroughputStore(tmp_path)
    first, _, lines = calibrate(FakeExecutor(), [local("teacher", TEACHER)], store)
    assert lines[0].startswith("llmswap: calibrating GPU-hour throughput of teacher (5 rounds")
    assert [ln.split(" done")[0] for ln in lines[1:]] == [f"llmswap: calibration round {i}/5" for i in range(1, 6)]
    again = FakeExecutor()
    second, warnings, lines = calibrate(again, [local("teacher", TEACHER)], store)
    assert again.calls == 0 and second == first and not warnings
    date = first["teacher"].measured_at[:10]
    assert lines == [f"llmswap: GPU-hour throughput of teacher from the calibration of {date} in {store.path} "
                     "(--llmswap-recalibrate re-measures)"]
    assert "1 thread, CPU time" in first["teacher"].hardware and "torch " in first["teacher"].hardware


def test_a_copied_checkpoint_folder_is_the_same_model_by_its_weights_digest(tmp_path):
    store = ThroughputStore(tmp_path / "cache")
    first, _, _ = calibrate(FakeExecutor(), [local("teacher", TEACHER)], store)
    copy = shutil.copytree(TEACHER, tmp_path / "elsewhere" / "renamed")
    executor = FakeExecutor()
    second, _, lines = calibrate(executor, [local("copy", copy)], store)
    assert executor.calls == 0 and second["copy"] == first["teacher"]
    assert lines[0].startswith("llmswap: GPU-hour throughput of copy from the calibration of")
    # Other options are another calibration: bf16 runs at its own speed.
    assert calibrate(FakeExecutor(), [local("teacher", TEACHER)], store)[2][0].endswith("re-measures)")
    bf16 = ModelSpec("bf16", "hf", str(copy), options=(("dtype", "bfloat16"),), prices=Prices(gpu_hour_usd=0.4))
    assert calibrate(FakeExecutor(), [bf16], store)[2][0].startswith("llmswap: calibrating")


def test_recalibrate_measures_a_stored_model_again_and_stores_the_new_rounds(tmp_path, monkeypatch):
    store = ThroughputStore(tmp_path)
    calibrate(FakeExecutor(), [local("teacher", TEACHER)], store, monkeypatch=monkeypatch)
    slower = FakeExecutor(**{str(TEACHER): 0.1})
    measured, _, lines = calibrate(slower, [local("teacher", TEACHER)], store, recalibrate=True,
                                   monkeypatch=monkeypatch)
    assert slower.calls == 6 and lines[0].startswith("llmswap: calibrating GPU-hour throughput of teacher")
    assert measured["teacher"].throughput_tok_s == pytest.approx(50.0)  # 5 tokens in 0.1 s
    assert store.load()[0] == {k: measured["teacher"] for k in store.load()[0]}


def test_a_corrupt_store_is_one_warning_line_and_the_model_is_measured_again(tmp_path):
    store = ThroughputStore(tmp_path)
    (tmp_path / STORE_NAME).write_text("{not json")
    executor = FakeExecutor()
    measured, warnings, _ = calibrate(executor, [local("teacher", TEACHER)], store)
    assert executor.calls == 6 and measured["teacher"].rounds_tok_s
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{store.path} is not a readable throughput calibration (")
    assert warnings[0].endswith("; re-measuring")
    assert store.load() == ({k: measured["teacher"] for k in store.load()[0]}, None)  # written back whole


def test_a_new_model_is_timed_beside_the_stored_incumbent_whose_price_holds_still(tmp_path, monkeypatch):
    store = ThroughputStore(tmp_path)
    incumbent, student = local("teacher", TEACHER), local("student", tmp_path / "student")
    (tmp_path / "student").mkdir()
    first, _, _ = calibrate(FakeExecutor(), [incumbent], store, monkeypatch=monkeypatch)
    assert first["teacher"].throughput_tok_s == pytest.approx(100.0)
    # The machine is twice as slow today, and the student half as fast as the teacher measured beside it.
    busy = FakeExecutor(**{str(TEACHER): 0.1, str(tmp_path / "student"): 0.2})
    second, _, lines = calibrate(busy, [incumbent, student], store, monkeypatch=monkeypatch)
    assert busy.calls == 12 and lines[0].startswith("llmswap: calibrating GPU-hour throughput of student, teacher")
    assert second["teacher"] == first["teacher"]  # the incumbent's stored price is kept
    assert second["student"].throughput_tok_s == pytest.approx(50.0)  # half the incumbent's stored 100 tok/s


def test_the_monthly_cost_range_runs_from_the_fastest_to_the_slowest_round():
    info = ModelInfo("teacher", "hf:t", "hf", throughput_tok_s=100.0, throughput_rounds_tok_s=[100.0, 80.0, 90.0])
    assert info.monthly_range(4.0) == pytest.approx((4.0, 5.0))
    assert ModelInfo("api", "openai/x", "litellm").monthly_range(4.0) is None
