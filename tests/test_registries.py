"""The registries of backends and metrics: a toy of each, registered from outside the package, works end to end."""

import json

import pytest

from pytest_llmswap import Tolerance, register_metric
from pytest_llmswap.drift import metrics
from pytest_llmswap.drift.tolerance import ToleranceError
from pytest_llmswap.models import backends

# The inner session's conftest: a backend that shouts the first word of the prompt, and a metric that counts
# capital letters (lower is better), each one registration.
TOYS = '''
from pytest_llmswap import BackendKind, register_backend, register_metric
from pytest_llmswap.types import Response, Usage


class ShoutBackend:
    def __init__(self, spec):
        self.spec = spec

    def complete(self, requests, on_answer=None):
        answers = []
        for i, request in enumerate(requests):
            first, _, rest = request.messages[-1][1].partition(" ")
            text = " ".join(w for w in (first.upper(), rest) if w)
            answers.append(Response(text=text, model="shout-1", usage=Usage(input_tokens=2, output_tokens=2)))
            if on_answer is not None:
                on_answer(i, answers[-1])
        return answers

    def resolved_model_id(self):
        return "shout-1"


def capitals(golden, candidate):
    letters = [c for c in candidate.text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else None


register_backend(BackendKind("shout", "shout:NAME", lambda text, base: (text[6:], {}) if text.startswith("shout:")
                             else None, lambda spec, settings: ShoutBackend(spec)))
register_metric("capitals", capitals, higher_is_better=False)
'''


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers is gone after it: the registries are process-wide and pytester runs in-process."""
    monkeypatch.setattr(metrics, "_METRICS", dict(metrics._METRICS))
    monkeypatch.setattr(backends, "_REGISTERED", dict(backends._REGISTERED))


def test_toy_backend_and_metric_from_a_conftest(suite, registries) -> None:
    pytester = suite('prompt="{{ text }}", cases=[{"id": "short", "text": "hi"}, '
                     '{"id": "long", "text": "hello there my friends"}], tolerance={"capitals": 0.5}',
                     body='assert case["text"] in output.text.lower()')
    pytester.makeconftest(TOYS)
    result = pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new",
                                "--candidate-model", "loud=shout:first", "--llmswap-json", "out.json",
                                "--llmswap-report", "report.html")
    # The toy backend answered as a candidate; its answer to "hi" is all capitals, beyond the toy tolerance.
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_contract?short-loud*", "drift beyond tolerance: capitals 1.000 > 0.5",
                                 "*1 of 2 cases passed*1 beyond tolerance*"])
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["candidates"][0]["kind"] == "shout" and data["candidates"][0]["resolved_id"] == "shout-1"
    assert data["contracts"][0]["tolerance"] == {"capitals": 0.5}
    cases = {c["case_id"]: c for c in data["cases"] if c["candidate"] == "loud"}
    assert cases["short"]["metrics"]["capitals"] == 1.0
    assert cases["long"]["metrics"]["capitals"] == pytest.approx(5 / 19)
    assert cases["short"]["exceeded_metrics"] == ["capitals"] and not cases["short"]["passed"]
    assert cases["long"]["exceeded_metrics"] == [] and cases["long"]["passed"]
    summary = data["summaries"]["candidates"]["loud"]
    assert summary["metrics"]["capitals"]["n"] == 2
    # The verdict counts the case beyond the toy tolerance as broken.
    assert (summary["exceeded"], summary["regressions"], summary["passed"]) == (1, 1.0, 1)
    html = (pytester.path / "report.html").read_text()
    assert "<th>capitals</th>" in html
    assert '<button type="button">mean capitals</button>' in html  # its mean in the contracts table


def test_registered_metric_tolerances_and_clashes(registries) -> None:
    register_metric("toy", lambda golden, candidate: 0.0, higher_is_better=True, tolerance_key="toy_floor")
    limits = Tolerance.from_value({"toy_floor": 0.25, "edit": 0.8})
    assert limits.to_dict() == {"edit": 0.8, "toy_floor": 0.25}
    assert [(m.name, limit) for m, limit in limits.limits()] == [("edit", 0.8), ("toy", 0.25)]
    assert metrics.report_order({"kl_max", "toy", "tools", "exact"}) == ["exact", "tools", "toy", "kl_max"]
    with pytest.raises(ToleranceError, match="'toy_floor' must be a number"):
        Tolerance.from_value({"toy_floor": "high"})
    for name, key in (("edit", None), ("other", "field_agreement"), ("fields", None), ("toy", "x")):
        with pytest.raises(ValueError, match="already registered"):
            register_metric(name, lambda golden, candidate: 0.0, higher_is_better=True, tolerance_key=key)
    with pytest.raises(ValueError, match="'hf' is already registered"):
        backends.register_backend(backends.kind_of("hf"))


def test_the_reports_rank_drift_by_the_preferred_similarity_metric() -> None:
    from pytest_llmswap.drift.metrics import similarity

    assert similarity({"edit": 0.4, "semantic": 0.9, "exact": 0.0}) == 0.9  # semantic first where measured
    assert similarity({"edit": 0.4, "semantic": None}) == 0.4
    assert similarity({"exact": 1.0, "tokens": 2.0}) is None  # neither similarity metric: no drift order
