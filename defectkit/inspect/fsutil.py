"""Write-then-rename helpers: a folder either appears complete or not at all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from defectkit.errors import ConfigError


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
