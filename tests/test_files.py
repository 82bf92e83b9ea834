"""files.write_text: atomic, the user's umask, lossless, and one line naming the path when it cannot write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_llmswap.files import OutputWriteError, write_text

HARD_TEXT = "a\udc80b\ud800\x00c \u00e9\U0001f600 " + "x" * (1 << 20)  # lone surrogates, NUL, astral, 1 MB


def test_json_text_round_trips_whatever_it_contains(tmp_path):
    path = tmp_path / "out" / "a.json"
    write_text(path, json.dumps({"t": HARD_TEXT}, ensure_ascii=False))
    assert json.loads(path.read_text(encoding="utf-8"))["t"] == HARD_TEXT  # valid UTF-8, and lossless


def test_new_files_get_the_umask_and_existing_files_keep_their_mode(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "report.html"
    write_text(path, "one")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    path.chmod(0o640)
    write_text(path, "two")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.mkdir(parents=True), "it is a directory"),
    (lambda p: p.parent.write_text("x"), "is a file, not a folder"),
])
def test_unwritable_paths_are_one_line_naming_the_path(tmp_path, make, reason):
    path = tmp_path / "sub" / "report.html"
    make(path)
    with pytest.raises(OutputWriteError) as info:
        write_text(path, "x")
    message = str(info.value)
    assert message.startswith(f"cannot write {path}: ") and reason in message and "\n" not in message
    assert isinstance(info.value, OSError)


@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        probe = folder / "probe"
        try:
            probe.write_text("x")
        except OSError:
            yield folder
        else:
            probe.unlink()
            pytest.skip("cannot make a read-only folder here (root without chattr)")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_read_only_folder_keeps_the_old_file_and_says_why(read_only_dir):
    path = read_only_dir / "goldens.json"
    with pytest.raises(OutputWriteError, match=r"^cannot write .*goldens.json: (permission denied|operation not permitted)"):
        write_text(path, "{}")
    assert not path.exists()


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the write, as a full disk does."""
    path = tmp_path / "big.json"
    path.write_text("old")
    script = f"""
import resource, signal, sys
from pathlib import Path
from pytest_llmswap.files import OutputWriteError, write_text
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    write_text(Path({str(path)!r}), "x" * 100_000)
except OutputWriteError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == f"cannot write {path}: file too large\n"
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["big.json"]


def test_a_path_with_a_nul_byte_is_an_output_write_error(tmp_path):
    with pytest.raises(OutputWriteError, match="null"):
        write_text(Path(str(tmp_path / "a\x00b")), "x")
