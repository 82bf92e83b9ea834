"""A small OpenAI-compatible chat server on 127.0.0.1 for tests: canned answers, latency and faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    """Answers ``POST /v1/chat/completions`` with ``answer(prompt)``.

    ``faults`` is a list of HTTP status codes returned, one per request, before answers are served
    (429/500 test retries). ``delay_s`` sleeps before answering (timeouts, concurrency). Every request's
    headers and body are kept in ``seen`` so tests can check what was sent.
    """

    def __init__(self, answer: Callable[[str], str], model: str = "test-model-2026-01-01",
                 delay_s: float = 0.0, faults: list[int] | None = None) -> None:
        self.answer = answer
        self.model = model
        self.delay_s = delay_s
        self.faults = list(faults or [])
        self.seen: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.seen.append({"headers": dict(self.headers), "body": body})
                    fault = server.faults.pop(0) if server.faults else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    if fault is not None:
                        self._send(fault, {"error": {"message": f"injected fault {fault}", "type": "server_error"}})
                        return
                    prompt = body["messages"][-1]["content"]
                    text = server.answer(prompt)
                    words = len(prompt.split())
                    self._send(200, {
                        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                        "model": server.model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": words, "completion_tokens": len(text.split()),
                                  "total_tokens": words + len(text.split())},
                    })
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextmanager
def chat_server(answer: Callable[[str], str], **kwargs: Any) -> Iterator[ChatServer]:
    """Run a :class:`ChatServer` in a background thread for the duration of the block."""
    server = ChatServer(answer, **kwargs)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
