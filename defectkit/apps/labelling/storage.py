"""Atomic file writes for the project folder: a file is either the old one or the new one.

Why: the app is closed by closing a browser tab, and the server by Ctrl-C or a reboot,
at any moment. Writing into a temporary file beside the target and renaming it over the
target (``os.replace`` is atomic on POSIX and Windows within one file system) means a
kill mid-write leaves the previous version intact, never a half-written ``project.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Prefix of our temporary files, so :func:`remove_temporaries` never touches anything else.
TMP_PREFIX = ".dk-tmp-"


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (e.g. a zip); on success it becomes ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files a killed write left in ``folder`` (not recursive); returns how many."""
    count = 0
    if Path(folder).is_dir():
        for leftover in Path(folder).glob(f"{TMP_PREFIX}*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                count += 1
    return count
