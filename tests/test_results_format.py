"""The results file keeps its format (version 4) now that samples are typed: files written before read and write
back byte for byte, and each sample serialises as the dict it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmswap.results import RunResults
from pytest_llmswap.types import CallRecord, Response, Sample, TokenLogprob, Usage
from synthetic import synthetic_results

#: Written by pytest-llmswap before samples were typed (commit 8f3a291): the README's models on two cases of each
#: example contract, recorded with two samples: incumbent rows with ``passed`` samples, an application contract's
#: ``calls``, candidate rows, and the student's unadapted answers with their log-probs.
SAVED = Path(__file__).parent / "snapshots" / "results-v4.json"


def _written(results: RunResults, logprobs: bool = False) -> str:
    """The results file as the plugin writes it (report/terminal.py)."""
    return json.dumps(results.to_dict(logprobs=logprobs), separators=(",", ":"), sort_keys=True) + "\n"


def test_a_file_written_before_samples_were_typed_reads_and_writes_back_byte_for_byte():
    text = SAVED.read_text(encoding="utf-8")
    results = RunResults.from_dict(json.loads(text))
    samples = [s for c in results.cases for s in (*c.golden, c.output, c.unadapted and c.unadapted.output) if s]
    assert samples and all(isinstance(s, Sample) for s in samples)
    app = [s for s in samples if s.calls]
    assert app and all(isinstance(c, CallRecord) for s in app for c in s.calls)
    assert any(s.passed for s in samples) and any(s.logprobs for s in samples)
    # That file kept the unadapted answers' log-probs, which only --llmswap-json-logprobs keeps now: with it, the
    # file comes back byte for byte but for the one field verdicts gained since (measured_rework, read as its
    # default); without it, no sample of any kind has log-probs.
    written = results.to_dict(logprobs=True)
    verdicts = written["summaries"]["verdicts"]
    assert [v.pop("measured_rework") for v in verdicts.values()] == [None] * len(verdicts)
    assert json.dumps(written, separators=(",", ":"), sort_keys=True) + "\n" == text
    assert '"logprobs":[{' in text and '"logprobs":[{' not in _written(results)


def test_each_sample_is_written_with_its_keys_in_the_order_of_the_dict_it_replaced():
    response = Response("hi", "m", Usage(3, 2, 1), latency_s=0.123456, cost_usd=1.23456789e-5, finish_reason="stop",
                        logprobs=(TokenLogprob(7, "hi", -0.1234567, ((7, -0.1234567), (8, -2.0))),))
    calls = (CallRecord({"model": "m", "messages": []}, {"text": "hi", "usage": {"input_tokens": 3}}),)
    old = {**response.to_dict(), "calls": [c.to_dict() for c in calls], "passed": True}  # appcalls.sample, judged
    sample = Sample.of(response, passed=True, calls=calls)
    assert json.dumps(sample.to_dict()) == json.dumps(old)
    assert json.dumps(Sample.from_dict(old).to_dict()) == json.dumps(old)
    assert Sample.from_dict(old) == sample
    # Held as the file holds it: what a report reads in the session is what it reads from the file.
    assert (sample.latency_s, sample.cost_usd) == (old["latency_s"], old["cost_usd"])
    assert sample.logprobs[0].logprob == old["logprobs"][0]["logprob"]
    plain = response.to_dict()
    assert Sample.of(response).to_dict() == plain and "logprobs" not in Sample.of(response).to_dict(logprobs=False)
    assert list(Sample.from_dict({**plain, "passed": False}).to_dict()) == [*plain, "passed"]


@pytest.mark.parametrize("logprobs", [False, True])
def test_synthetic_results_round_trip_and_share_each_golden_once(logprobs):
    results = synthetic_results(60)
    text = _written(results, logprobs)
    data = json.loads(text)
    assert len(data["golden_samples"]) < len(data["cases"])  # three candidate rows share each case's golden
    first = data["golden_samples"][data["cases"][0]["golden"]][0]
    assert list(first) == ["cost_usd", "finish_reason", "latency_s", "model", "passed", "text", "usage"]
    again = RunResults.from_dict(data)
    assert again.cases == results.cases
    assert _written(again, logprobs) == text
