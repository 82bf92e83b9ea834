"""The on-disk response cache, keyed by request hash: a re-run or a resumed run calls no model."""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from ..golden import atomic_write
from ..types import Response


class ResponseCache:
    """One JSON file per request key. ``run_id`` tags entries so a run can ignore older ones.

    Responses hold no credentials (``Request.key`` hashes only public parameters), so nothing secret
    reaches the disk.
    """

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.run_id = run_id

    def lock(self) -> FileLock:
        """An inter-process lock held while a session executes its requests."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self.directory / ".execute.lock")

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, *, this_run_only: bool = False) -> Response | None:
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if this_run_only and entry.get("run_id") != self.run_id:
            return None
        return Response.from_dict(entry["response"])

    def put(self, key: str, response: Response) -> None:
        atomic_write(self._path(key), json.dumps({"run_id": self.run_id, "response": response.to_dict()}))
