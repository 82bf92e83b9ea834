"""A local checkpoint's weights digest is hashed once per version of each file, across processes
(pytest_llmswap/models/weights.py): a multi-GB checkpoint is not read again by every run and xdist worker."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pytest_llmswap.models import weights


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty store of this test's own, and a process that has hashed nothing yet."""
    monkeypatch.setenv("LLMSWAP_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "_known", {})
    return tmp_path / "cache" / "weights.json"


def checkpoint(folder: Path, data: bytes = b"weights " * 1000) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(data)
    (folder / "config.json").write_text("{}")  # not a weight file: not part of the digest
    return folder


def expected(data: bytes) -> str:
    return hashlib.sha256(b"model.safetensors" + hashlib.sha256(data).hexdigest().encode()).hexdigest()[:12]


def test_a_new_process_takes_the_stored_hash_instead_of_reading_the_weights(tmp_path, store, monkeypatch):
    folder = checkpoint(tmp_path / "m")
    first = weights.weights_digest(folder)
    assert first == expected(b"weights " * 1000)
    assert list(json.loads(store.read_text()).values()) == [hashlib.sha256(b"weights " * 1000).hexdigest()]
    monkeypatch.setattr(weights, "_known", {})  # as a new process starts

    def unread(path: Path) -> str:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(weights, "_file_hash", unread)
    assert weights.weights_digest(folder) == first


def test_a_weight_file_rewritten_in_place_is_hashed_again(tmp_path, store):
    folder = checkpoint(tmp_path / "m", b"a" * 4096)
    first = weights.weights_digest(folder)
    path = folder / "model.safetensors"
    stat = path.stat()
    path.write_bytes(b"b" * 4096)  # the same size and file: retrained weights saved over the old ones
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert first == expected(b"a" * 4096) and weights.weights_digest(folder) == expected(b"b" * 4096)


def test_the_store_forgets_deleted_checkpoints_and_a_corrupt_store_is_only_a_miss(tmp_path, store, monkeypatch):
    gone = checkpoint(tmp_path / "gone")
    weights.weights_digest(gone)
    shutil.rmtree(gone)
    kept = checkpoint(tmp_path / "kept", b"other")
    weights.weights_digest(kept)
    assert [json.loads(k)[0] for k in json.loads(store.read_text())] == [str((kept / "model.safetensors").resolve())]
    store.write_text("{not json")
    monkeypatch.setattr(weights, "_known", {})
    assert weights.weights_digest(kept) == expected(b"other")
    assert list(json.loads(store.read_text()).values()) == [hashlib.sha256(b"other").hexdigest()]


def test_without_a_writable_cache_folder_the_digest_is_still_given(tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("a file where the cache folder would be")
    monkeypatch.setenv("LLMSWAP_CACHE_HOME", str(tmp_path / "taken" / "llmswap"))
    monkeypatch.setattr(weights, "_known", {})
    assert weights.weights_digest(checkpoint(tmp_path / "m")) == expected(b"weights " * 1000)
