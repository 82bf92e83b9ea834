"""The one way this plugin writes a text file: atomically, with the user's umask, losslessly, or one clear error."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path


class OutputWriteError(OSError):
    """A file could not be written; ``str()`` is one line naming the path and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of it.

    The file is UTF-8; a lone surrogate (which UTF-8 cannot hold) is written as its ``\\udXXX`` escape,
    which is lossless in JSON, where that is the escape JSON itself uses. A new file gets the mode
    the umask gives (an existing one keeps its mode). Raises :class:`OutputWriteError`.
    """
    write_bytes(path, encode(text))


def encode(text: str) -> bytes:
    """``text`` as this writer stores it: UTF-8, a lone surrogate as its ``\\udXXX`` escape (never an error)."""
    return text.encode("utf-8", "backslashreplace")


def append_text(path: Path, text: str) -> None:
    """Append ``text`` (encoded as :func:`encode` does) to a file others append to as well, such as
    ``$GITHUB_STEP_SUMMARY``; raises :class:`OutputWriteError`."""
    try:
        with open(path, "ab") as fh:
            fh.write(encode(text))
    except OSError as exc:
        raise OutputWriteError(Path(path), _reason(exc)) from None


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically, with the user's umask (see :func:`write_text`); raises :class:`OutputWriteError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputWriteError(path, "it is a directory; give a file path")
    folder = path.parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputWriteError(path, f"{parent} is a file, not a folder")
            break
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600 whatever the umask
        os.replace(tmp, path)
        tmp = None
    except (OSError, ValueError) as exc:
        raise OutputWriteError(path, _reason(exc)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


_umask_lock = threading.Lock()
_umask_value: int | None = None


def _umask() -> int:
    """The process umask, read once: from /proc on Linux, else by setting it and back (under a lock)."""
    global _umask_value
    with _umask_lock:
        if _umask_value is None:
            try:
                status = Path("/proc/self/status").read_text()
                _umask_value = int(next(ln for ln in status.splitlines() if ln.startswith("Umask:")).split()[1], 8)
            except (OSError, StopIteration, ValueError, IndexError):
                _umask_value = os.umask(0o022)
                os.umask(_umask_value)
        return _umask_value
