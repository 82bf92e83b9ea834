"""Streams handed to the application: chunk by chunk, sync or async, recorded as they pass through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from .wire import StreamJoiner


class _Tap:
    """Joins the chunks that pass through and reports the joined response once, at the end or on close."""

    def __init__(self, done: Callable[[dict[str, Any]], None] | None) -> None:
        self.joiner = StreamJoiner()
        self.done = done

    def chunk(self, chunk: Any) -> Any:
        if self.done is not None:
            self.joiner.add(chunk.model_dump() if hasattr(chunk, "model_dump") else dict(chunk))
        return chunk

    def end(self) -> None:
        if self.done is not None:
            done, self.done = self.done, None
            done(self.joiner.response())

    def broken(self) -> None:
        """The source raised mid-stream: report nothing, so a cut answer is never taken for a whole one."""
        self.done = None


class ChunkStream:
    """A sync stream of chunks (``for chunk in stream``); ``with`` and ``close()`` work as on the SDK's."""

    def __init__(self, source: Iterable[Any], done: Callable[[dict[str, Any]], None] | None = None,
                 raw: Any = None) -> None:
        self._it: Iterator[Any] = iter(source)
        self._tap = _Tap(done)
        self._raw = raw

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> Any:
        try:
            return self._tap.chunk(next(self._it))
        except StopIteration:
            self._tap.end()
            raise
        except Exception:
            self._tap.broken()
            raise

    def flush(self) -> None:
        """Record what has passed so far (an application may stop reading a stream early)."""
        self._tap.end()

    def close(self) -> None:
        self._tap.end()
        if hasattr(self._raw, "close"):
            self._raw.close()

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # the SDK stream's other attributes (``response``...)
        if self._raw is None:
            raise AttributeError(name)
        return getattr(self._raw, name)


class AsyncChunkStream:
    """An async stream of chunks (``async for chunk in stream``), with ``async with`` and ``await close()``."""

    def __init__(self, source: Any, done: Callable[[dict[str, Any]], None] | None = None, raw: Any = None) -> None:
        self._it: AsyncIterator[Any] = source.__aiter__() if hasattr(source, "__aiter__") else _aiter(source)
        self._tap = _Tap(done)
        self._raw = raw

    def __aiter__(self) -> AsyncChunkStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return self._tap.chunk(await self._it.__anext__())
        except StopAsyncIteration:
            self._tap.end()
            raise
        except Exception:
            self._tap.broken()
            raise

    def flush(self) -> None:
        """Record what has passed so far (an application may stop reading a stream early)."""
        self._tap.end()

    async def close(self) -> None:
        self._tap.end()
        closer = getattr(self._raw, "close", None) or getattr(self._raw, "aclose", None)
        if closer is not None:
            result = closer()
            if hasattr(result, "__await__"):
                await result

    aclose = close

    async def __aenter__(self) -> AsyncChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        if self._raw is None:
            raise AttributeError(name)
        return getattr(self._raw, name)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
