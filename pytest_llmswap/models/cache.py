"""The response store: every answer on disk as soon as it arrives, shared by threads, xdist workers and processes.

One SQLite database in WAL mode per cache folder: each ``put`` is its own committed transaction, so a
run killed at any moment keeps every answer it received, and a rerun calls only what was never
answered. Responses are stored as ASCII JSON, so any text (lone surrogates, NUL) round-trips exactly.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..files import OutputWriteError
from ..types import Response

DB_NAME = "responses.sqlite3"
LOCK_NAME = ".execute.lock"
# How to get past a store that cannot be used; the run goes on without it meanwhile.
FIX = "free space or delete the folder, or point --llmswap-cache-dir elsewhere, or pass --llmswap-no-cache"


class ResponseCache:
    """Responses by request key. ``run_id`` tags entries so a run can ignore older ones (re-recording).

    Responses hold no credentials (``Request.key`` hashes only public parameters), so nothing secret
    reaches the disk. Safe to use from several threads: each thread gets its own connection.
    """

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self.path = directory / DB_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self.unreadable = 0  # stored rows that were not a response (not JSON, no text): misses, called again

    @classmethod
    def ephemeral(cls, run_id: str) -> ResponseCache:
        """A store for one run only (``--llmswap-no-cache``): in the temp dir, keyed by the run id, so the
        xdist workers of that run share it; whoever created it calls :meth:`remove` at the end."""
        return cls(Path(tempfile.gettempdir()) / f"llmswap-run-{run_id}", run_id)

    def lock(self) -> FileLock:
        """An inter-process lock held while a session executes its requests (xdist workers wait, then
        find every answer in the store)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / LOCK_NAME)

    def check(self) -> None:
        """Make sure the store can be written now: its folder, lock file and database (a write transaction,
        rolled back). Raises :class:`OutputWriteError`, one line with the reason and the fix."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / LOCK_NAME, "a"):
                pass
            db = self._db()
            db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only or corrupt database
            db.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise OutputWriteError(self.path, f"{reason}; {FIX}") from None

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Autocommit: every put is committed (and survives kill -9) before put returns.
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across process crashes
            conn.execute("CREATE TABLE IF NOT EXISTS responses "
                         "(key TEXT PRIMARY KEY, run_id TEXT NOT NULL, response TEXT NOT NULL)")
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def get(self, key: str, *, this_run_only: bool = False) -> Response | None:
        """The stored response for ``key`` (only one stored by this run when ``this_run_only``), or None."""
        data = self.get_data(key, this_run_only=this_run_only)
        if data is None:
            return None
        try:
            return Response.from_dict(data)
        except (KeyError, TypeError, ValueError):  # a row without text, or with fields of the wrong type
            self.unreadable += 1
            return None

    def holds_all(self, keys: Iterable[str], *, this_run_only: bool = False) -> bool:
        """Whether every key has a stored response (by this run when ``this_run_only``), without reading them:
        one query per 500 keys."""
        wanted = sorted(set(keys))
        found = 0
        try:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                sql = f"SELECT COUNT(*) FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                args: list[str] = chunk
                if this_run_only:
                    sql, args = sql + " AND run_id = ?", [*chunk, self.run_id]
                found += int(self._db().execute(sql, args).fetchone()[0])
        except (sqlite3.Error, OSError):
            return False
        return found == len(wanted)

    def put(self, key: str, response: Response) -> None:
        """Store one response now; raises :class:`OutputWriteError` naming the database when it cannot."""
        self.put_data(key, response.to_dict())

    def get_data(self, key: str, *, this_run_only: bool = False) -> dict[str, Any] | None:
        """The stored JSON object for ``key`` (an application call's response is one), or None."""
        try:
            row = self._db().execute("SELECT run_id, response FROM responses WHERE key = ?", (key,)).fetchone()
        except (sqlite3.Error, OSError):
            return None  # an unreadable store is a miss; put says what is wrong with it
        if row is None or (this_run_only and row[0] != self.run_id):
            return None
        try:
            data = json.loads(row[1])
        except (TypeError, ValueError):
            data = None
        if not isinstance(data, dict):  # written by something else: a miss, so the call is made again
            self.unreadable += 1
            return None
        return data

    def put_data(self, key: str, data: dict[str, Any]) -> None:
        """Store one JSON object now; raises :class:`OutputWriteError` naming the database when it cannot."""
        text = json.dumps(data, ensure_ascii=True, sort_keys=True)
        try:
            self._db().execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, self.run_id, text))
        except (sqlite3.Error, OSError) as exc:
            raise OutputWriteError(self.path, f"{exc}; {FIX}") from None

    def count(self) -> int:
        """How many responses are stored (for tests and diagnostics)."""
        try:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except (sqlite3.Error, OSError):
            return 0

    def close(self) -> None:
        """Close every thread's connection (a connection of a finished thread is closed from here)."""
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def remove(self) -> None:
        """Close the store and delete its folder (for :meth:`ephemeral` stores, at the end of the run)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
