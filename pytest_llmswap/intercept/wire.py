"""The OpenAI chat wire format, both ways: plain requests and responses out of SDK objects, and back.

Nothing here imports litellm or openai: objects are read through ``model_dump`` and built as wire dicts,
which :mod:`.patch` turns into the type the application expects.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

# Sampling and decoding parameters that decide the answer; an allowlist, so that credentials, base URLs,
# headers, timeouts and provider plumbing never reach a golden.
PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop", "n",
          "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
          "parallel_tool_calls", "reasoning_effort")
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: pydantic objects dumped, a pydantic class as its JSON schema."""
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"type": "json_schema", "json_schema": {"name": value.__name__, "schema": value.model_json_schema()}}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(exclude_none=True))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"id": call.get("id"), "type": call.get("type", "function"),
            "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or ""}}


def _message(message: Any) -> dict[str, Any]:
    """One message with only the keys that decide the answer (SDK objects carry many empty extras)."""
    data = jsonable(message)
    out = {k: data[k] for k in _MESSAGE_KEYS if data.get(k) not in (None, [], "")}
    if "tool_calls" in out:
        out["tool_calls"] = [_tool_call(c) for c in out["tool_calls"]]
    return out


def make_request(api: str, model: str, messages: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A plain, JSON-able request from an intercepted call's arguments; never credentials."""
    request: dict[str, Any] = {"api": api, "model": str(model), "messages": [_message(m) for m in messages or ()]}
    for key in ("tools", "tool_choice", "response_format"):
        if kwargs.get(key) is not None:
            request[key] = jsonable(kwargs[key])
    params = {k: jsonable(kwargs[k]) for k in PARAMS if kwargs.get(k) is not None}
    if params:
        request["params"] = params
    request["stream"] = bool(kwargs.get("stream"))
    if request["stream"] and (kwargs.get("stream_options") or {}).get("include_usage"):
        request["stream_usage"] = True
    return request


def match_key(request: dict[str, Any]) -> dict[str, Any]:
    """The part of a request compared on replay: messages, tools, tool_choice, response_format, params.

    The model name and the stream flag are left out: a recorded answer serves a stream or a plain call, and
    the model is what a migration changes.
    """
    return {k: request[k] for k in ("messages", "tools", "tool_choice", "response_format", "params") if k in request}


def usage_of(wire_usage: dict[str, Any] | None) -> dict[str, int]:
    wire_usage = wire_usage or {}
    return {"input_tokens": int(wire_usage.get("prompt_tokens") or 0),
            "output_tokens": int(wire_usage.get("completion_tokens") or 0)}


def response_from_wire(wire: dict[str, Any]) -> dict[str, Any]:
    """A recorded response (text, tool calls, usage, finish reason, model) from a chat completion dict."""
    choice = (wire.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [_tool_call(c) for c in message.get("tool_calls") or ()]
    return {"text": message.get("content") or "", "tool_calls": calls,
            "finish_reason": choice.get("finish_reason"), "usage": usage_of(wire.get("usage")),
            "model": wire.get("model") or ""}


def _wire_usage(response: dict[str, Any]) -> dict[str, int]:
    usage = response.get("usage") or {}
    i, o = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


def _finish(response: dict[str, Any]) -> str:
    return response.get("finish_reason") or ("tool_calls" if response.get("tool_calls") else "stop")


def wire_completion(response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion dict that answers ``request`` with ``response``."""
    message: dict[str, Any] = {"role": "assistant", "content": response.get("text") or None}
    if response.get("tool_calls"):
        message["tool_calls"] = [_tool_call(c) for c in response["tool_calls"]]
    elif message["content"] is None:
        message["content"] = ""
    return {"id": "chatcmpl-llmswap", "object": "chat.completion", "created": int(time.time()),
            "model": response.get("model") or request.get("model", ""),
            "choices": [{"index": 0, "finish_reason": _finish(response), "message": message}],
            "usage": _wire_usage(response)}


def split_text(text: str) -> list[str]:
    """Stream pieces of a text that was not recorded as a stream: one word with its trailing space each."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def wire_chunks(response: dict[str, Any], request: dict[str, Any], *, usage_chunk_alone: bool) -> list[dict[str, Any]]:
    """Chunk dicts that stream ``response``: the recorded pieces (or words), tool calls, then the finish.

    OpenAI sends usage (when asked with ``stream_options``) in a last chunk with no choices; litellm puts it
    on the finishing chunk: ``usage_chunk_alone`` picks the first.
    """
    model = response.get("model") or request.get("model", "")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-llmswap", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    pieces = response.get("chunks") or split_text(response.get("text") or "")
    # As OpenAI does: a first chunk with the role and no text, then the pieces.
    out = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
    for i, call in enumerate(response.get("tool_calls") or ()):
        out.append(chunk({"tool_calls": [{"index": i, **_tool_call(call)}]}))
    out.append(chunk({}, _finish(response)))
    if request.get("stream_usage"):
        if usage_chunk_alone:
            out.append({**chunk({}), "choices": [], "usage": _wire_usage(response)})
        else:
            out[-1]["usage"] = _wire_usage(response)
    return out


class StreamJoiner:
    """Joins streamed chunk dicts into one recorded response, keeping each chunk's text."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model = ""

    def add(self, chunk: dict[str, Any]) -> None:
        self.model = chunk.get("model") or self.model
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.pieces.append(delta["content"])
            for part in delta.get("tool_calls") or ():
                call = self.calls.setdefault(int(part.get("index") or 0), {"id": None, "name": "", "arguments": ""})
                fn = part.get("function") or {}
                call["id"] = part.get("id") or call["id"]
                call["name"] += fn.get("name") or ""
                call["arguments"] += fn.get("arguments") or ""
            self.finish = choice.get("finish_reason") or self.finish

    def response(self) -> dict[str, Any]:
        calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for _, c in sorted(self.calls.items())]
        return {"text": "".join(self.pieces), "tool_calls": calls, "finish_reason": self.finish,
                "usage": usage_of(self.usage), "model": self.model, "chunks": list(self.pieces)}


def describe_difference(recorded: dict[str, Any], now: dict[str, Any]) -> str:
    """The first difference between two match keys, short enough for one line."""
    for key in ("messages", "tools", "tool_choice", "response_format", "params"):
        a, b = recorded.get(key), now.get(key)
        if a == b:
            continue
        if key == "messages" and isinstance(a, list) and isinstance(b, list):
            for i, (ma, mb) in enumerate(zip(a, b)):
                for field in sorted(set(ma) | set(mb)):
                    if ma.get(field) != mb.get(field):
                        return (f"messages[{i}].{field} changed: recorded {_short(ma.get(field))}, "
                                f"now {_short(mb.get(field))}")
            return f"the call has {len(b)} messages, the recording {len(a)}"
        return f"{key} changed: recorded {_short(a)}, now {_short(b)}"
    return "the request changed"


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
