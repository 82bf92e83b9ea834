"""A small key-value cache in one SQLite file, shared by the embedding and logit-drift caches.

Each write is one transaction: atomic, and safe for concurrent pytest-xdist workers on the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

_MAX_PARAMS = 500  # SQLite's bound-parameter limit is 999 on old builds


class SqliteCache:
    """``bytes -> bytes`` in table ``table`` of the SQLite file ``path`` (created on first use)."""

    def __init__(self, path: Path, table: str, value_column: str = "value") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._table, self._column = table, value_column
        # One connection, used from whichever thread scores; the lock keeps its calls apart.
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key BLOB PRIMARY KEY, {value_column} BLOB NOT NULL)")

    def get(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored values of ``keys`` that are present."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _MAX_PARAMS):
                chunk = keys[start:start + _MAX_PARAMS]
                marks = ",".join("?" * len(chunk))
                found.update(self._db.execute(
                    f"SELECT key, {self._column} FROM {self._table} WHERE key IN ({marks})", chunk))
        return found

    def put(self, items: dict[bytes, bytes]) -> None:
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {self._table} VALUES (?, ?)", list(items.items()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
