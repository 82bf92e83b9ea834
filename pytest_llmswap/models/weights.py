"""What names a local checkpoint: a digest of its weight files, hashed once per file version, not once per run.

Goldens, the response store and the calibration store name a local checkpoint by a sha256 over its weight
files: a retrained model is never answered from the cache, and a copy in another folder is the same model. Every
run (and every xdist worker) needs that digest as it parses its model specs, and hashing a multi-GB checkpoint
reads all of it. So each file's hash is kept in a small store in the user's cache folder, under the file's path,
size, modification time and inode (the trust git's index places in a file's stat), and the file is read again
only when one of those changed. Where that folder cannot be written, the hashes are kept for the process only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from ..files import OutputWriteError, write_text

#: What a weight file is called; other files of a checkpoint folder (config, tokenizer) do not name the weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
#: The most files the store remembers (the most recently hashed kept): it stays a few hundred KB at most.
STORE_ENTRIES = 2000

_known: dict[str, str] = {}  # stat key -> sha256 of the file, this process
_lock = threading.Lock()


def store_path() -> Path | None:
    """``$LLMSWAP_CACHE_HOME/weights.json``, else ``$XDG_CACHE_HOME/pytest-llmswap/weights.json``, else under
    ``~/.cache``; None when there is no home to put it in."""
    if os.environ.get("LLMSWAP_CACHE_HOME"):
        return Path(os.environ["LLMSWAP_CACHE_HOME"]) / "weights.json"
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory to resolve
        return None
    return base / "pytest-llmswap" / "weights.json"


def weights_digest(folder: Path) -> str:
    """Short sha256 over the folder's weight files (their names and contents), so a golden names the exact
    checkpoint."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    keys = [_stat_key(p) for p in files]
    with _lock:
        if any(k not in _known for k in keys):
            _known.update({k: v for k, v in _read_store().items() if k not in _known})
            fresh = {k: _file_hash(p) for p, k in zip(files, keys) if k not in _known}
            if fresh:
                _known.update(fresh)
                _remember(fresh)
        hashes = [_known[k] for k in keys]
    digest = hashlib.sha256()
    for path, file_hash in zip(files, hashes):
        digest.update(path.name.encode() + file_hash.encode())
    return digest.hexdigest()[:12]


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino])


def _file_hash(path: Path) -> str:
    file_hash = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            file_hash.update(chunk)
    return file_hash.hexdigest()


def _still_there(key: str) -> bool:
    """Whether the file a stored key names still exists (a malformed key does not)."""
    try:
        return Path(json.loads(key)[0]).exists()
    except (ValueError, TypeError, IndexError, KeyError):
        return False


def _read_store() -> dict[str, str]:
    """The stored hashes; an unreadable or malformed store is an empty one (it is only a cache)."""
    path = store_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _remember(fresh: dict[str, str]) -> None:
    """Add ``fresh`` hashes to the store, dropping files that no longer exist and the oldest past
    :data:`STORE_ENTRIES`. Another process writing at the same moment may drop an entry: it is hashed again."""
    path = store_path()
    if path is None:
        return
    kept = {k: v for k, v in _read_store().items() if k not in fresh and _still_there(k)}
    entries = list({**kept, **fresh}.items())[-STORE_ENTRIES:]
    try:
        write_text(path, json.dumps(dict(entries), indent=0))
    except OutputWriteError:
        pass  # a read-only home: this process keeps its hashes in memory
