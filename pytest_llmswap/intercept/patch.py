"""The interception itself: while :func:`intercept` is active, litellm's and the OpenAI SDK's chat calls go
through a handler; outside it nothing is patched.

What is patched: ``litellm.completion``/``acompletion`` (and every module-level reference to them, such as
``from litellm import completion``), and the SDK classes ``Completions.create``/``AsyncCompletions.create``,
which every OpenAI client reaches whatever its ``base_url``. Calls the handler makes itself (forwarding to
the incumbent, asking a candidate through litellm) run with interception bypassed.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

from ..types import remember_secrets, secret_values
from .handlers import Candidate, Handler, InterceptError, Kept, Record, Replay
from .records import CallRecord, summarize
from .streams import AsyncChunkStream, ChunkStream
from .wire import make_request, response_from_wire, wire_chunks, wire_completion

_bypass: ContextVar[bool] = ContextVar("llmswap_intercept_bypass", default=False)
_current: ContextVar[Session | None] = ContextVar("llmswap_intercept_session", default=None)
_lock = threading.RLock()
_stack: list[Session] = []
_patched: list[tuple[Any, str, Any]] = []  # (owner, attribute, original value)
_wrappers: dict[int, tuple[Any, Any]] = {}  # id(wrapper) -> (wrapper, original)


class _Listing(NamedTuple):
    """The application's modules as listed while ``sys.modules`` had ``size`` entries."""

    size: int
    modules: list[Any]
    namespaces: list[dict[str, Any]]


class _Scan(NamedTuple):
    """Where the originals were bound at the last install: valid while every namespace keeps its size."""

    listing: _Listing
    sizes: list[int]
    originals: frozenset[int]
    names: list[tuple[str, ...]]  # per namespace of the listing, the names bound to an original


_listing = _Listing(-1, [], [])
_scan: _Scan | None = None
_installed_over: _Listing = _listing  # the listing the active patches were applied to
# Modules that hold the originals on purpose: litellm calls its own completion, the SDK its own create.
_OWN = ("litellm", "openai", "pytest_llmswap.intercept")
#: What pydantic says about litellm's own types to every application that calls litellm, nothing about the suite:
#: its notes on litellm's ``ReadOnly`` TypedDicts (made when a call first needs them, in the test body that
#: happens to make it) and its serializer warnings on litellm's responses. Ignored while an application runs
#: under interception, by message and module: the suite's own warnings still show.
LIBRARY_WARNINGS = (
    (r"Items? .* on TypedDict class .* (is|are) using the `ReadOnly` qualifier", r"pydantic\."),
    (r"Pydantic serializer warnings", r"pydantic\."),
)
_quiet: list[warnings.catch_warnings] = []  # the filters of the active block, restored as it ends


class Session:
    """The calls of one intercepted block, in order; ``summary()`` sums them, ``check()`` fails on errors."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[CallRecord] = []
        self.errors: list[InterceptError] = []
        self.open_streams: list[Callable[[], None]] = []  # recording streams, flushed at the block's end
        self._lock = threading.Lock()

    def start(self, request: dict[str, Any]) -> CallRecord:
        record = CallRecord(request)
        with self._lock:
            self.calls.append(record)
        return record

    def summary(self) -> dict[str, Any]:
        return summarize(self.calls)

    def close_streams(self) -> None:
        for flush in self.open_streams:
            flush()
        self.open_streams.clear()

    def check(self) -> None:
        """Raise the first call error (even one the application caught), then any unused recorded call."""
        if self.errors:
            raise self.errors[0]
        if isinstance(self.handler, Replay):
            self.handler.finish()


@contextmanager
def intercept(handler: Handler) -> Iterator[Session]:
    """Intercept every litellm and OpenAI SDK chat call inside the block; yields the :class:`Session`.

    Calls from threads the application starts inside the block are intercepted too (they go to the most
    recent active session). On a clean exit, :meth:`Session.check` runs.
    """
    session = Session(handler)
    token = _current.set(session)
    with _lock:
        if not _stack:
            _install()
        _stack.append(session)
    try:
        yield session
    finally:
        with _lock:
            _stack.remove(session)
            if not _stack:
                _uninstall()
        _current.reset(token)
        session.close_streams()
    session.check()


def _session() -> Session | None:
    if _bypass.get():
        return None
    with _lock:
        own = _current.get()
        return own if own in _stack else (_stack[-1] if _stack else None)


@contextmanager
def _bypassed() -> Iterator[None]:
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def _answer(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    if isinstance(handler, Replay):
        return handler.answer(request)
    fn = handler.answer if isinstance(handler, Candidate) else handler.incumbent
    assert fn is not None
    with _bypassed():
        start = time.perf_counter()
        response = dict(fn(request))
    response.setdefault("latency_s", time.perf_counter() - start)
    return response


class _Api:
    """How one API's objects are built and read: litellm or the OpenAI SDK."""

    def __init__(self, name: str, completion: Callable[[dict[str, Any]], Any], chunk: Callable[[dict[str, Any]], Any],
                 usage_chunk_alone: bool) -> None:
        self.name = name
        self.completion = completion
        self.chunk = chunk
        self.usage_chunk_alone = usage_chunk_alone

    def reply(self, response: dict[str, Any], request: dict[str, Any], is_async: bool) -> Any:
        if not request["stream"]:
            return self.completion(wire_completion(response, request))
        chunks = [self.chunk(c) for c in wire_chunks(response, request, usage_chunk_alone=self.usage_chunk_alone)]
        return AsyncChunkStream(chunks) if is_async else ChunkStream(chunks)


def _recorded(raw: Any, start: float) -> dict[str, Any]:
    response = response_from_wire(raw.model_dump())
    response["latency_s"] = time.perf_counter() - start
    response["cost_usd"] = (getattr(raw, "_hidden_params", None) or {}).get("response_cost")
    return response


def _stream_done(record: CallRecord, start: float, kept: Kept | None) -> Callable[[dict[str, Any]], None]:
    def done(response: dict[str, Any]) -> None:
        record.response = {**response, "latency_s": time.perf_counter() - start, "cost_usd": None}
        if kept is not None:
            kept.put(record.request, record.response)

    return done


def _kept(handler: Record, record: CallRecord) -> bool:
    """Whether a pass-through recording already kept an answer to this call (it becomes the call's response)."""
    found = handler.kept.get(record.request) if handler.kept is not None else None
    if found is not None:
        record.response = found
    return found is not None


def _passed_through(session: Session, handler: Record, record: CallRecord, raw: Any, start: float,
                    stream_type: type[ChunkStream] | type[AsyncChunkStream]) -> Any:
    """What the application's own client returned, recorded (and kept) once it is complete: a stream at its end."""
    if record.request["stream"]:
        stream = stream_type(raw, _stream_done(record, start, handler.kept), raw)
        session.open_streams.append(stream.flush)
        return stream
    record.response = _recorded(raw, start)
    if handler.kept is not None:
        handler.kept.put(record.request, record.response)
    return raw


def _failed(session: Session, exc: InterceptError) -> InterceptError:
    session.errors.append(exc)
    return exc


def _remember_keys(kwargs: dict[str, Any]) -> None:
    """The credentials an application passes with a call (``api_key=``, ``extra_headers=``): masked in every
    error shown from now on, though they may be in no environment variable."""
    remember_secrets(secret_values(kwargs))


def _remember_client(resource: Any) -> None:
    """The key and default headers of the application's own SDK client (``OpenAI(api_key=...)``), as above."""
    client = getattr(resource, "_client", None)
    if _session() is not None and client is not None:
        remember_secrets(secret_values({"api_key": getattr(client, "api_key", None),
                                        "headers": getattr(client, "_custom_headers", None)}))


def _sync_call(api: _Api, model: Any, messages: Any, kwargs: dict[str, Any], call: Callable[[], Any]) -> Any:
    session = _session()
    if session is None:
        return call()
    _remember_keys(kwargs)
    request = make_request(api.name, model, messages, kwargs)
    record = session.start(request)
    start = time.perf_counter()
    if isinstance(session.handler, Record) and session.handler.incumbent is None:
        if _kept(session.handler, record):
            return api.reply(record.response, request, is_async=False)
        with _bypassed():
            raw = call()
        return _passed_through(session, session.handler, record, raw, start, ChunkStream)
    try:
        record.response = _answer(session.handler, request)
    except InterceptError as exc:
        raise _failed(session, exc) from None
    return api.reply(record.response, request, is_async=False)


async def _async_call(api: _Api, model: Any, messages: Any, kwargs: dict[str, Any], call: Callable[[], Any]) -> Any:
    session = _session()
    if session is None:
        return await call()
    _remember_keys(kwargs)
    request = make_request(api.name, model, messages, kwargs)
    record = session.start(request)
    start = time.perf_counter()
    if isinstance(session.handler, Record) and session.handler.incumbent is None:
        if _kept(session.handler, record):
            return api.reply(record.response, request, is_async=True)
        with _bypassed():
            raw = await call()
        return _passed_through(session, session.handler, record, raw, start, AsyncChunkStream)
    try:
        # In a thread: a candidate may block (a local model) or run its own event loop (litellm).
        record.response = await asyncio.to_thread(_answer, session.handler, request)
    except InterceptError as exc:
        raise _failed(session, exc) from None
    return api.reply(record.response, request, is_async=True)


def _wrap(owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.attr`` (a module or class attribute) with ``make(original)``; remembered for restore."""
    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    if id(original) in _wrappers:  # already ours (a late import of the same module)
        return
    wrapper = make(original)
    _wrappers[id(wrapper)] = (wrapper, original)
    _patched.append((owner, attr, original))
    setattr(owner, attr, wrapper)


def _refuse(what: str, instead: str) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            if _session() is None:
                return original(*args, **kwargs)
            raise InterceptError(f"{what} is not intercepted by pytest-llmswap: {instead}")

        return refused

    return make


def _patch_litellm(litellm: Any) -> None:
    from litellm.types.utils import ModelResponse, ModelResponseStream

    api = _Api("litellm", lambda w: ModelResponse(**w), lambda c: ModelResponseStream(**c), usage_chunk_alone=False)

    def sync(original: Any) -> Any:
        def completion(*args: Any, **kwargs: Any) -> Any:
            model, messages = (list(args) + [kwargs.get("model"), kwargs.get("messages")][len(args):])[:2]
            return _sync_call(api, model, messages, kwargs, lambda: original(*args, **kwargs))

        return completion

    def asyn(original: Any) -> Any:
        async def acompletion(*args: Any, **kwargs: Any) -> Any:
            model, messages = (list(args) + [kwargs.get("model"), kwargs.get("messages")][len(args):])[:2]
            return await _async_call(api, model, messages, kwargs, lambda: original(*args, **kwargs))

        return acompletion

    originals = (litellm.completion, litellm.acompletion)
    _wrap(litellm, "completion", sync)
    _wrap(litellm, "acompletion", asyn)
    for name in ("responses", "aresponses"):
        if hasattr(litellm, name):
            _wrap(litellm, name, _refuse(f"litellm.{name}", "call litellm.completion or acompletion instead"))
    _patch_references({id(o): (o, w) for o, w in zip(originals, (litellm.completion, litellm.acompletion))})


def _refuse_raw(kwargs: dict[str, Any]) -> None:
    """``with_raw_response``/``with_streaming_response`` want HTTP objects an intercepted call cannot give."""
    session = _session()
    if session is not None and "X-Stainless-Raw-Response" in (kwargs.get("extra_headers") or {}):
        raise _failed(session, InterceptError(
            "client.chat.completions.with_raw_response / with_streaming_response is not intercepted by "
            "pytest-llmswap: call client.chat.completions.create in code under test"))


def _patch_openai_chat(module: Any) -> None:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    api = _Api("openai", ChatCompletion.model_validate, ChatCompletionChunk.model_validate, usage_chunk_alone=True)

    def sync(original: Any) -> Any:
        def create(self: Any, *args: Any, **kwargs: Any) -> Any:
            _refuse_raw(kwargs)
            _remember_client(self)
            return _sync_call(api, kwargs.get("model"), kwargs.get("messages"), kwargs,
                              lambda: original(self, *args, **kwargs))

        return create

    def asyn(original: Any) -> Any:
        async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
            _refuse_raw(kwargs)
            _remember_client(self)
            return await _async_call(api, kwargs.get("model"), kwargs.get("messages"), kwargs,
                                     lambda: original(self, *args, **kwargs))

        return create

    _wrap(module.Completions, "create", sync)
    _wrap(module.AsyncCompletions, "create", asyn)
    for cls in (module.Completions, module.AsyncCompletions):
        for name in ("parse", "stream"):
            _wrap(cls, name, _refuse(f"client.chat.completions.{name}",
                                     "call client.chat.completions.create (with response_format or stream=True)"))


def _patch_openai_responses(module: Any) -> None:
    for cls in (module.Responses, module.AsyncResponses):
        _wrap(cls, "create", _refuse("client.responses.create (the OpenAI Responses API)",
                                     "call client.chat.completions.create in code under test"))


_PATCHERS: dict[str, Callable[[Any], None]] = {
    "litellm": _patch_litellm,
    "openai.resources.chat.completions.completions": _patch_openai_chat,
    "openai.resources.responses.responses": _patch_openai_responses,
}


def _app_listing() -> _Listing:
    """Every loaded module but litellm's, openai's and this package's (remembered while none is imported)."""
    global _listing
    if _listing.size != len(sys.modules):
        modules = [m for name, m in list(sys.modules.items())
                   if m is not None and name.split(".")[0] not in _OWN and not name.startswith(_OWN[-1])
                   and isinstance(getattr(m, "__dict__", None), dict)]
        _listing = _Listing(len(sys.modules), modules, [m.__dict__ for m in modules])
    return _listing


def _patch_references(replace: dict[int, tuple[Any, Any]]) -> None:
    """Point module-level names bound to an original (``from litellm import completion``) at its wrapper.

    ``replace`` maps ``id(original)`` to ``(original, wrapper)``; identity, not equality, decides. A block
    runs per test item, so where the originals are bound is remembered while no module is imported and every
    namespace keeps its size (compared in one pass at C speed); only namespaces that changed are read again.
    """
    global _scan, _installed_over
    listing = _installed_over = _app_listing()
    sizes = list(map(len, listing.namespaces))
    originals = frozenset(replace)
    previous = _scan if _scan is not None and _scan.listing is listing and _scan.originals == originals else None
    if previous is None or previous.sizes != sizes:
        def bound(i: int, namespace: dict[str, Any]) -> tuple[str, ...]:
            if previous is not None and previous.sizes[i] == sizes[i]:
                return previous.names[i]
            return tuple(k for k, v in list(namespace.items()) if id(v) in replace and replace[id(v)][0] is v)

        _scan = previous = _Scan(listing, sizes, originals, [bound(i, ns) for i, ns in enumerate(listing.namespaces)])
    for module, namespace, bound in zip(listing.modules, listing.namespaces, previous.names):
        for name in bound:
            value = namespace.get(name)
            if id(value) in replace and replace[id(value)][0] is value:
                _patched.append((module, name, value))
                setattr(module, name, replace[id(value)][1])


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches litellm or the SDK's resources when they are first imported inside the block."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _PATCHERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            with _lock:
                if _stack:
                    _PATCHERS[fullname](module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


_hook = _PatchOnImport()


def _install() -> None:
    quiet = warnings.catch_warnings()
    quiet.__enter__()
    _quiet.append(quiet)
    for message, module in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning, module=module)
    for name, patch in _PATCHERS.items():
        if sys.modules.get(name) is not None:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _hook)


def _uninstall() -> None:
    sys.meta_path.remove(_hook)
    for owner, attr, original in reversed(_patched):
        setattr(owner, attr, original)
    # Names bound to a wrapper while the block ran (a module imported inside it) get the original back.
    listing = _app_listing()
    if listing is not _installed_over:
        before = set(map(id, _installed_over.namespaces))  # their patched names were restored above
        for module, namespace in zip(listing.modules, listing.namespaces):
            if id(namespace) not in before:
                for name, value in list(namespace.items()):
                    if id(value) in _wrappers and _wrappers[id(value)][0] is value:
                        setattr(module, name, _wrappers[id(value)][1])
    _patched.clear()
    _wrappers.clear()
    while _quiet:
        _quiet.pop().__exit__(None, None, None)


def is_patched() -> bool:
    """True while some :func:`intercept` block is active."""
    with _lock:
        return bool(_patched)
