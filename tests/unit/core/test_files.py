"""One home for atomic writes and streaming SHA-256 (defectkit.core.files)."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from defectkit.core.files import (
    TMP_PREFIX,
    atomic_directory,
    atomic_file,
    remove_temporaries,
    sha256_bytes,
    sha256_file,
    sha256_stream,
    write_atomic,
)
from defectkit.errors import ConfigError


def test_write_bytes_replaces_atomically_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.json"
    write_atomic(target, json.dumps({"a": 1}, indent=2).encode())
    write_atomic(target, json.dumps({"a": 2}, indent=2).encode())
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    write_atomic(target, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_file_and_cleanup(tmp_path):
    with atomic_file(tmp_path / "a.zip") as tmp:
        tmp.write_bytes(b"zip")
        assert not (tmp_path / "a.zip").exists()
    assert (tmp_path / "a.zip").read_bytes() == b"zip"
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "b.zip") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert not (tmp_path / "b.zip").exists()
    (tmp_path / f"{TMP_PREFIX}x").write_bytes(b"")
    assert (
        remove_temporaries(tmp_path) == 1
        and remove_temporaries(tmp_path / "no") == 0
    )


def test_sha256_helpers_agree_and_stream_in_chunks(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # more than one chunk
    (tmp_path / "blob").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == sha256_file(tmp_path / "blob") == expected
    assert sha256_stream(io.BytesIO(data)) == expected


def test_atomic_directory_replaces_ours_and_refuses_foreign_folders(tmp_path):
    with atomic_directory(tmp_path / "out", marker="mark") as tmp:
        (tmp / "mark").write_text("1")
    with atomic_directory(tmp_path / "out", marker="mark") as tmp:
        (tmp / "mark").write_text("2")
    assert (tmp_path / "out" / "mark").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old folders
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "precious.txt").write_text("not ours")
    with pytest.raises(ConfigError, match="not empty"), atomic_directory(tmp_path / "foreign", marker="mark"):
        pass
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "new", marker="mark") as tmp:
        raise RuntimeError
    assert not (tmp_path / "new").exists()
