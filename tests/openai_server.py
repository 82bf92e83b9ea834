"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1 for tests.

Answers ``POST /v1/chat/completions`` with ``answer(prompt)``: a string (the message content) or a dict
(the whole message, e.g. ``{"content": None, "tool_calls": [...]}``). ``"stream": true`` requests get the
answer as server-sent events. Faults are injected from a queue (``faults``: one per request, before any
answer) and per prompt (``fault_for(prompt)``: the fault for every request with that prompt, or None).

A fault is an HTTP status code (``429``, ``500``, ``503``...) or one of :data:`FAULTS`;
``"429:retry-after=3"`` adds a ``Retry-After`` header (seconds, or an HTTP date when not a number).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Fault = int | str
Answer = str | dict[str, Any]

# What each named fault sends instead of a good answer.
FAULTS = {
    "timeout": "never answers within any sane timeout (sleeps until the server stops)",
    "reset": "sends the headers and half of the body, then resets the connection (RST)",
    "stream_reset": "streams the first half of an answer's chunks (SSE), then resets the connection (RST)",
    "malformed_json": "200 with a body that is not JSON",
    "no_choices": "200 with a completion object without `choices`",
    "empty_choices": "200 with `choices: []`",
    "html": "200 with an HTML error page (text/html)",
    "empty_body": "200 with an empty body",
    "empty_content": "200 with `content: \"\"`",
    "null_content": "200 with `content: null`",
    "echo_headers": "400 (or ``echo_headers:401``, ``:500``...) whose error message echoes the request's path and "
                    "query and every header (as careless providers do)",
}


class ChatServer:
    """The server; ``seen`` keeps every request's headers and body, ``answered`` the prompts served 200 OK.

    ``delay_s`` sleeps before answering (timeouts, concurrency); ``in_flight`` / ``max_in_flight`` count
    requests being served at once; ``hold_after=N`` answers N good requests, then holds the others
    until ``release`` is set (a test can then kill a client at a known point); ``gather=N`` holds each
    request until N are in flight at once (or 10 s have passed since the first), so a concurrency test
    does not depend on how fast a loaded machine starts its threads.
    """

    def __init__(self, answer: Callable[[str], Answer], model: str = "test-model-2026-01-01",
                 delay_s: float = 0.0, faults: list[Fault] | None = None,
                 fault_for: Callable[[str], Fault | None] | None = None, hold_after: int | None = None,
                 gather: int | None = None) -> None:
        self.answer = answer
        self.model = model
        self.delay_s = delay_s
        self.faults = list(faults or [])
        self.fault_for = fault_for
        self.hold_after = hold_after
        self.gather = gather
        self._gather_until: float | None = None
        self.release = threading.Event()
        self.stopping = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._granted = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def prompts(self) -> list[str]:
        """The last user message of every request received, in order."""
        return [s["body"]["messages"][-1]["content"] for s in self.seen]

    def _next_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        return self.fault_for(prompt) if self.fault_for else None

    def _gather(self) -> None:
        # Called with the lock held: wake the requests already waiting, then wait for the rest to arrive.
        if self._gather_until is None:
            self._gather_until = time.monotonic() + 10
        self._arrived.notify_all()
        self._arrived.wait_for(lambda: self.max_in_flight >= (self.gather or 0),
                               timeout=max(0.0, self._gather_until - time.monotonic()))

    def _hold(self) -> None:
        # Slots are counted when granted, not when answered, so exactly ``hold_after`` requests get through.
        with self._lock:
            hold = self.hold_after is not None and self._granted >= self.hold_after
            self._granted += 0 if hold else 1
        if hold:
            self.release.wait()

    def completion(self, prompt: str, message: dict[str, Any]) -> dict[str, Any]:
        words = len(prompt.split())
        out = len(str(message.get("content") or "").split())
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": self.model,
                "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                             "message": {"role": "assistant", **message}}],
                "usage": {"prompt_tokens": words, "completion_tokens": out, "total_tokens": words + out}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real providers do

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = str(body["messages"][-1]["content"])
                with server._lock:
                    server.seen.append({"headers": dict(self.headers), "body": body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if server.gather:
                        server._gather()
                try:
                    fault = server._next_fault(prompt)
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    if fault is not None:
                        self._fault(fault, prompt)
                        return
                    server._hold()
                    answer = server.answer(prompt)
                    message = answer if isinstance(answer, dict) else {"content": answer}
                    if body.get("stream"):
                        self._stream(server.completion(prompt, message))
                    else:
                        self._send(200, json.dumps(server.completion(prompt, message)).encode())
                    with server._lock:
                        server.answered.append(prompt)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _fault(self, fault: Fault, prompt: str) -> None:
                code, _, option = str(fault).partition(":")
                if code.isdigit():
                    headers = {"Retry-After": option.split("=", 1)[1]} if option.startswith("retry-after=") else {}
                    error = {"error": {"message": f"injected fault {code}", "type": "server_error"}}
                    self._send(int(code), json.dumps(error).encode(), headers=headers)
                elif code == "echo_headers":
                    # The SDK's own x-stainless-* headers left out, so the credentials fall within the
                    # first 300 characters that errors keep.
                    echoed = dict(sorted(((k, v) for k, v in self.headers.items()
                                          if not k.lower().startswith("x-stainless")),
                                         key=lambda kv: not kv[0].lower().startswith(("x-", "authorization"))))
                    # The bare key first, as OpenAI's 401 does ("Incorrect API key provided: KEY").
                    token = str(self.headers.get("Authorization", "")).split(" ")[-1]
                    error = {"error": {"message": f"incorrect API key provided: {token}; bad request to {self.path}; "
                                                  f"headers were {echoed}"}}
                    self._send(int(option) if option.isdigit() else 400, json.dumps(error).encode())
                elif code == "timeout":
                    server.stopping.wait()
                elif code == "reset":
                    self._reset(json.dumps(server.completion(prompt, {"content": "cut short"})).encode())
                elif code == "stream_reset":  # an SSE stream cut after its first chunks
                    self._stream(server.completion(prompt, {"content": "cut short in the middle of a reply"}),
                                 cut=True)
                elif code == "html":
                    self._send(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
                elif code in ("malformed_json", "empty_body"):
                    self._send(200, b'{"id": "chatcmpl-test", "choices": [' if code == "malformed_json" else b"")
                else:
                    self._send(200, json.dumps(self._broken_completion(code, prompt)).encode())

            def _broken_completion(self, code: str, prompt: str) -> dict[str, Any]:
                if code not in FAULTS:
                    raise ValueError(f"unknown fault {code!r}; use a status code or one of {sorted(FAULTS)}")
                data = server.completion(prompt, {"content": None if code == "null_content" else ""})
                if code == "no_choices":
                    del data["choices"]
                elif code == "empty_choices":
                    data["choices"] = []
                return data

            def _reset(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._rst()

            def _rst(self) -> None:
                self.wfile.flush()
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _stream(self, completion: dict[str, Any], cut: bool = False) -> None:
                message = completion["choices"][0]["message"]
                chunks = [{"role": "assistant", "content": ""}]
                chunks += [{"content": w} for w in _pieces(message.get("content") or "")]
                if message.get("tool_calls"):
                    chunks.append({"tool_calls": [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {k: completion[k] for k in ("id", "created", "model")}
                for i, delta in enumerate(chunks):
                    if cut and i == len(chunks) // 2:
                        self._rst()
                        return
                    event = {**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                last = {**base, "object": "chat.completion.chunk", "usage": completion["usage"],
                        "choices": [{"index": 0, "delta": {}, "finish_reason": completion["choices"][0]["finish_reason"]}]}
                self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

            def _send(self, status: int, data: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _pieces(text: str) -> list[str]:
    """The text in word-sized pieces that concatenate back to it exactly."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            pieces.append(text[start:i])
            start = i
    return pieces + ([text[start:]] if text[start:] else [])


@contextmanager
def chat_server(answer: Callable[[str], Answer], **kwargs: Any) -> Iterator[ChatServer]:
    """Run a :class:`ChatServer` in a background thread for the duration of the block."""
    server = ChatServer(answer, **kwargs)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def named_models(urls: dict[str, str], *, key: str = "sk-test", extra: dict[str, str] | None = None) -> str:
    """``[tool.llmswap.models.NAME]`` tables, one per ``(name, url)``: model ``openai/NAME-model`` at ``url`` with
    ``key``; ``extra`` adds TOML lines to a named table."""
    extra = extra or {}
    return "\n".join(f'[tool.llmswap.models.{name}]\nmodel = "openai/{name}-model"\napi_base = "{url}"\n'
                     f'api_key = "{key}"\n{extra.get(name, "")}\n' for name, url in urls.items())
