"""Files that appear complete or not at all, and their SHA-256: one home for both.

Why write-then-rename: a kill, a reboot or a closed browser tab can stop a write at any
moment. Everything is written into a temporary file or folder beside its target and
renamed over it (``os.replace`` is atomic within one file system), so a reader sees the
old version or the new one, never half of one. Temporary names start with
:data:`TMP_PREFIX` (files) or ``.<name>.tmp-`` (folders), so leftovers can be found.

Hashes are read in chunks: an OpenVINO ``.bin`` or a foundation backbone's weights can
exceed a gigabyte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from defectkit.errors import ConfigError

#: Prefix of temporary files, so :func:`remove_temporaries` never touches anything else.
TMP_PREFIX = ".dk-tmp-"
#: Bytes read at a time when hashing.
CHUNK = 1 << 20


# --------------------------------------------------------------------------- hashes
def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes already in memory."""
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Hex SHA-256 of what is left to read in a binary stream, read in chunks."""
    digest = hashlib.sha256()
    while block := stream.read(CHUNK):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (never the whole file at once)."""
    with open(path, "rb") as f:
        return sha256_stream(f)


# --------------------------------------------------------------------------- files
@contextmanager
def atomic_file(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it becomes ``path``.

    Args:
        path: the file to create or replace (its folder is created).
        fsync: flush the data to disk before the rename, so a power cut cannot leave an
            empty file under the new name. Off for derived files written per image (the
            daemon's overlays), where the cost matters and a lost file is regenerated.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_file(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def remove_temporaries(folder: str | Path) -> int:
    """Delete temporary files a killed write left in ``folder`` (not recursive); returns how many."""
    count = 0
    if Path(folder).is_dir():
        for leftover in Path(folder).glob(f"{TMP_PREFIX}*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                count += 1
    return count


# --------------------------------------------------------------------------- folders
@contextmanager
def atomic_directory(target: str | Path, *, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``.

    Args:
        target: the folder to create or replace.
        marker: a file name that identifies folders we own; an existing non-empty
            ``target`` without it is refused rather than deleted (it is not ours).
    """
    target = Path(target)
    if target.exists():
        if not target.is_dir():
            raise ConfigError(f"{target} exists and is not a folder")
        if any(target.iterdir()) and not (target / marker).exists():
            raise ConfigError(
                f"{target} is not empty and was not written by defectkit; choose another output folder"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
