"""pytest hooks only: options, fixtures, parametrisation, the run's phases, the terminal summary, xdist."""

from __future__ import annotations

import os
import re
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .contract.decorator import CONTRACT_ATTR, ITEM_FIXTURE, ContractError, resolve
from .run.heap import Stage, freeze_heap
from .report.terminal import FAILED_LISTED, ItemRun, failed_items_lines, junit_properties
from .rootdir import restore_rootdir
from .run import execute, finish, plan
from .run.judge import Judge
from .run.keys import RECORD_MODES, ItemKey, RunError
from .run.outcome import ItemOutcome
from .run.state import RunState
from .run import progress
from .options import build_options
from .run.progress import Progress
from .types import Response

STATE = pytest.StashKey[RunState]()
JUDGE = pytest.StashKey[Judge]()
END = pytest.StashKey[finish.RunEnd]()
FAILED_REPORTS = pytest.StashKey[list[Any]]()  # pytest's own list, while ours is shown
WORKER_RESULTS = "llmswap_results"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmswap", "model-migration regression testing (pytest-llmswap)")
    group.addoption("--incumbent-model", metavar="SPEC", help="the model in production today, used to record "
                    "goldens (provider/model, hf:PATH?k=v, echo, or a [tool.llmswap.models] NAME)")
    group.addoption("--candidate-model", metavar="[NAME=]SPEC", action="append", default=None,
                    help="a model to evaluate against the goldens; repeat for several")
    group.addoption("--llmswap-record", choices=RECORD_MODES, default=None,
                    help="record goldens on the incumbent: 'new' (missing or stale ones) or 'all'")
    group.addoption("--llmswap-prune", action="store_true", default=False,
                    help="with --llmswap-record: remove goldens no collected case uses (full runs only)")
    group.addoption("--llmswap-samples", type=int, default=None, metavar="K",
                    help="samples per case when recording, to measure the noise floor (default 1)")
    group.addoption("--llmswap-concurrency", type=int, default=None, metavar="N",
                    help="API calls in flight at once (default 8)")
    group.addoption("--llmswap-timeout", type=float, default=None, metavar="S",
                    help="timeout per API call in seconds (default 60)")
    group.addoption("--llmswap-retries", type=int, default=None, metavar="N",
                    help="retries with exponential backoff for transient API errors (default 3)")
    group.addoption("--llmswap-backoff", type=float, default=None, metavar="S",
                    help="seconds before the first retry, doubled at each retry, with jitter; a server's "
                         "Retry-After wins (default 0.5)")
    group.addoption("--llmswap-max-wait", type=float, default=None, metavar="S",
                    help="seconds in all a model's requests may wait to retry (rate limits, backoff); then its "
                         "failing requests fail at once (default 300)")
    group.addoption("--llmswap-report", metavar="PATH", default=None,
                    help="HTML drift report (default llmswap-report.html when a candidate ran)")
    group.addoption("--llmswap-json", metavar="PATH", default=None, help="JSON results file")
    group.addoption("--llmswap-json-logprobs", action="store_true", default=False,
                    help="keep per-token log-probs in the JSON results file (left out by default: they are most "
                         "of its bytes)")
    group.addoption("--llmswap-markdown", metavar="PATH", default=None,
                    help="Markdown pull-request summary (also appended to $GITHUB_STEP_SUMMARY when set)")
    group.addoption("--llmswap-cache-dir", metavar="DIR", default=None,
                    help="response cache folder (default .llmswap_cache in the rootdir)")
    group.addoption("--llmswap-no-cache", action="store_true", default=False,
                    help="neither read nor write the response cache")
    group.addoption("--llmswap-recalibrate", action="store_true", default=False,
                    help="measure the throughput of GPU-hour-priced models again instead of reusing the calibration "
                         "stored in the cache folder")
    group.addoption("--llmswap-calibrate-only", action="store_true", default=False,
                    help="stop once the models are called and GPU-hour throughput is calibrated: no test runs, no "
                         "report is written (what `llmswap calibrate` runs, with --llmswap-recalibrate)")
    for name, kind, text in (
        ("llmswap_incumbent_model", "string", "default for --incumbent-model"),
        ("llmswap_candidate_models", "linelist", "default for --candidate-model (one per line)"),
        ("llmswap_record", "string", "default for --llmswap-record"),
        ("llmswap_samples", "string", "default for --llmswap-samples"),
        ("llmswap_concurrency", "string", "default for --llmswap-concurrency"),
        ("llmswap_timeout", "string", "default for --llmswap-timeout"),
        ("llmswap_retries", "string", "default for --llmswap-retries"),
        ("llmswap_backoff", "string", "default for --llmswap-backoff"),
        ("llmswap_max_wait", "string", "default for --llmswap-max-wait"),
        ("llmswap_report", "string", "default for --llmswap-report"),
        ("llmswap_json", "string", "default for --llmswap-json"),
        ("llmswap_markdown", "string", "default for --llmswap-markdown"),
        ("llmswap_cache_dir", "string", "default for --llmswap-cache-dir"),
    ):
        parser.addini(name, text, type=kind, default=[] if kind == "linelist" else None)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    # The first moment the plugin's options are known: a path option's value must not have moved the rootdir.
    restore_rootdir(early_config, args)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm_contract: an LLM contract test (added by @llm_contract)")
    progress.VERBOSE = config.option.verbose > 0
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput.get("llmswap_run_id") if workerinput else None
    try:
        options = build_options(config, run_id or uuid.uuid4().hex)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = RunState(options)


def pytest_report_header(config: pytest.Config) -> list[str]:
    options = config.stash[STATE].options
    if options.incumbent is not None and not options.record:
        return [f"llmswap: --incumbent-model {options.incumbent.name} without --llmswap-record: nothing will be "
                "recorded (the goldens are replayed; the incumbent is only timed for GPU-hour prices)"]
    return []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the controller's run id, so record-all reuses one another's calls."""
    node.workerinput["llmswap_run_id"] = node.config.stash[STATE].options.run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: gather a worker's case results on the controller, which writes the report."""
    payload = getattr(node, "workeroutput", {}).get(WORKER_RESULTS)
    if payload:
        absorbed = node.config.stash[STATE].absorbed
        absorbed.append(finish.absorbed(payload, len(absorbed)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    contract = getattr(metafunc.function, CONTRACT_ATTR, None)
    if contract is None:
        return
    nodeid = metafunc.definition.nodeid
    try:
        resolved = resolve(contract, Path(metafunc.definition.path), nodeid.split("::", 1)[1], nodeid)
    except ContractError as exc:
        pytest.fail(f"{nodeid}: {exc}", pytrace=False)
    state = metafunc.config.stash[STATE]
    state.add_contract(resolved)
    items = plan.items(state, resolved)
    metafunc.parametrize(ITEM_FIXTURE, [k for k, _ in items], ids=[i for _, i in items], indirect=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    keys = [k for k in map(_item_key, session.items) if k is not None]
    state = session.config.stash[STATE]
    if state.contracts:  # suites without contracts keep Python's collector exactly as they had it
        freeze_heap(session.config, Stage.COLLECTED)
    try:
        state.plan = plan.plan(state, keys)
    except RunError as exc:
        raise pytest.UsageError(str(exc)) from None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in state.plan.warnings if reporter else ():
        reporter.write_line(f"llmswap WARNING {line}", yellow=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    if not session.config.option.collectonly:
        worker = getattr(session.config, "workerinput", None)
        state = session.config.stash[STATE]
        if state.plan is not None:
            state.answers = execute.execute(state, state.plan, _progress_display(session.config, worker),
                                            only_when_calling=worker is not None)
        session.config.stash[JUDGE] = Judge(state)
        if session.config.getoption("llmswap_calibrate_only"):
            session.items.clear()  # calibrated: nothing is left to run
        if state.contracts:
            freeze_heap(session.config, Stage.LOADED)
    return (yield)


def _progress_display(config: pytest.Config, worker: dict[str, Any] | None) -> Progress | None:
    """Where progress goes while models are called: the terminal, or an xdist worker's stderr, which is the
    controller's (only the worker that calls the models prints there)."""
    if worker is not None:
        return Progress(progress.prefixed(sys.stderr, f"[{worker['workerid']}] "), tty=False)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    return Progress(lambda text: reporter.write(text, flush=True), tty=bool(reporter.isatty))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    key = _item_key(pyfuncitem)
    if key is None:
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    outcome = pyfuncitem.config.stash[JUDGE].item(key, pyfuncitem.obj, kwargs)
    state = pyfuncitem.config.stash[STATE]
    for case in outcome.cases:
        state.keep(case)
    pyfuncitem.user_properties.extend(junit_properties(key, [c.result for c in outcome.cases]))
    _fail(outcome)
    return True


def _fail(outcome: ItemOutcome) -> None:
    """Fail the item as judged: the check's own exception (pytest shows the user's assertion), else one line."""
    if outcome.exception is not None:
        raise outcome.exception
    if outcome.message is not None:
        pytest.fail(outcome.message, pytrace=False)


@pytest.fixture
def _llmswap_item(request: pytest.FixtureRequest) -> ItemKey:
    """The item's contract, case and model row (parametrised by the plugin)."""
    return request.param


# The per-item fixtures below take the run's state from this session fixture rather than from `request`:
# each function-scoped fixture that asks for `request` costs pytest a new fixture definition per item.
@pytest.fixture(scope="session")
def _llmswap_state(pytestconfig: pytest.Config) -> RunState:
    """The run's state (goldens, answers, results)."""
    return pytestconfig.stash[STATE]


@pytest.fixture
def output(_llmswap_state: RunState, _llmswap_item: ItemKey) -> Response | None:
    """The response under test: the candidate's answer, or the incumbent's golden in a replay."""
    return _llmswap_state.primary_response(_llmswap_item)


@pytest.fixture
def golden(_llmswap_state: RunState, _llmswap_item: ItemKey) -> Response | None:
    """The incumbent's recorded response for this case, or None when none is recorded."""
    return _llmswap_state.golden_response(_llmswap_item)


@pytest.fixture
def case(_llmswap_state: RunState, _llmswap_item: ItemKey) -> dict[str, Any]:
    """The case's template variables."""
    return _llmswap_state.variables(_llmswap_item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    if state.plan is None and not state.absorbed or session.config.getoption("llmswap_calibrate_only"):
        return  # collect-only, calibrate-only, or the run stopped on bad input before any model call
    if state.contracts:
        freeze_heap(session.config, Stage.FINISHED)
    workeroutput = getattr(session.config, "workeroutput", None)
    end = session.config.stash[END] = finish.finish_run(state, full_run=_full_run(session),
                                                        worker=workeroutput is not None)
    if workeroutput is not None:
        workeroutput[WORKER_RESULTS] = finish.export(state)
    if end.outcome is finish.RunOutcome.CRASHED:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    elif end.outcome is finish.RunOutcome.FAILED and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close(owner=getattr(config, "workerinput", None) is None)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    end = config.stash.get(END, None)
    _summarise_failed_items(terminalreporter, config, end)
    warnings = state.answers.warnings + (end.warnings if end else [])
    lines = ([f"ERROR {e}" for e in (end.errors if end else [])] + [f"WARNING {w}" for w in warnings]
             + ([f"pruned {end.pruned} unused golden(s)"] if end and end.pruned else [])
             + (end.report.summary_lines() if end and end.report else []))
    if lines:
        terminalreporter.write_sep("=", "llmswap")
    for line in lines:
        terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_terminal_summary")
def pytest_terminal_summary_restore(terminalreporter: Any) -> Any:
    """Around pytest's own summary: the failed reports left out of its short test summary come back before it
    counts them in its last line ("476 failed, ...")."""
    try:
        return (yield)
    finally:
        kept = terminalreporter.config.stash.get(FAILED_REPORTS, None)
        if kept is not None:
            terminalreporter.stats["failed"] = kept


def _summarise_failed_items(terminalreporter: Any, config: pytest.Config, end: finish.RunEnd | None) -> None:
    """A large run's failed contract items: one line per model (and contract) instead of one ``FAILED`` line each.

    Only when the user did not choose what the short test summary shows (``-r``) and more than
    ``FAILED_LISTED`` contract items failed: pytest then lists the other failures alone, and ``-rf`` (or
    ``-ra``, ``-rA``) brings every line back.
    """
    failed = terminalreporter.stats.get("failed", [])
    if terminalreporter.no_summary or "f" not in terminalreporter.reportchars or _report_chars_chosen(config):
        return
    hidden = [r for r in failed if _item_run(r) is not None]
    if len(hidden) <= FAILED_LISTED:
        return
    runs = [run for reports in terminalreporter.stats.values() for r in reports if (run := _item_run(r)) is not None]
    config.stash[FAILED_REPORTS] = failed
    terminalreporter.stats["failed"] = [r for r in failed if _item_run(r) is None]
    results = end.report.results if end and end.report else None
    terminalreporter.write_sep("=", "llmswap failed items")
    for line in failed_items_lines(runs, results, len(hidden)):
        terminalreporter.write_line(line)


def _report_chars_chosen(config: pytest.Config) -> bool:
    """Whether the user chose the short test summary's content: ``-r`` given (even as pytest's default ``fE``)
    on the command line, in ``PYTEST_ADDOPTS`` or in ``addopts``."""
    if config.option.reportchars != "fE":  # pytest's default
        return True
    args = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
            *config.getini("addopts")]
    return any(isinstance(a, str) and re.match(r"-[vqslx]*r|--report-chars", a) for a in args)


def _item_run(report: Any) -> ItemRun | None:
    """A contract item's call report as an :class:`ItemRun` (its ``llmswap_model`` property, also on xdist)."""
    if getattr(report, "when", None) != "call":
        return None
    model = next((v for k, v in getattr(report, "user_properties", ()) if k == "llmswap_model"), None)
    if model is None:
        return None
    return ItemRun(str(model), report.nodeid.split("[", 1)[0], report.failed)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[STATE].deselected += len(items)


def _full_run(session: pytest.Session) -> bool:
    """Whether every test of the suite was selected: only then can a golden be called unused (syrupy's rule)."""
    option = session.config.option
    state = session.config.stash[STATE]
    return (not state.deselected and not option.keyword and not option.markexpr
            and not getattr(option, "lf", False) and not any("::" in a for a in session.config.args))


def _item_key(item: pytest.Item) -> ItemKey | None:
    callspec = getattr(item, "callspec", None)
    key = callspec.params.get(ITEM_FIXTURE) if callspec else None
    return key if isinstance(key, ItemKey) else None


