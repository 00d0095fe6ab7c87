"""Where an archive's files come from, and how a worker reads one.

A SOURCE on the command line is a folder tree (every image file under it), a text file
listing one location per line, a glob (``/archive/2024-0[56]/**/*.png``) or a single
image. Each may be a local path or, when ``fsspec`` is installed, a URL (``s3://``,
``gcs://``, ``file://``...). Locations are yielded as absolute paths or full URLs:
they are what a row's ``name`` records and what a resumed run recognises, so the same
file must be named the same way whatever the working folder.

Listing is lazy (an archive of millions of files is never held in memory) and sorted
within each folder, so two listings of an unchanged archive agree.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from defectkit.core.files import CHUNK
from defectkit.core.images import is_image_file
from defectkit.errors import DatasetError

_GLOB_CHARS = frozenset("*?[")


def is_url(location: str) -> bool:
    """``s3://bucket/x.png`` and ``file:///x.png`` are URLs; ``C:\\x.png`` is not."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


@dataclass(frozen=True)
class SourceSpec:
    """One SOURCE argument, classified once: ``kind`` is tree, list, glob or image."""

    text: str
    kind: str


class Source:
    """The locations of one run's SOURCE arguments, in order, listed lazily.

    Raises:
        DatasetError: a SOURCE that is no folder, file or glob, a glob or folder
            without images, a list file naming nothing, a URL without ``fsspec``.
    """

    def __init__(self, specs: Sequence[str]) -> None:
        if not specs:
            raise DatasetError("no SOURCE given: name a folder, a file listing paths, or a glob")
        self.specs = tuple(_classify(str(s)) for s in specs)

    def __iter__(self) -> Iterator[str]:
        for spec in self.specs:
            found = False
            for location in _list(spec):
                found = True
                yield location
            if not found:
                raise DatasetError(f"{spec.text}: no image files found ({spec.kind})")

    def count(self) -> int:
        """How many locations a full listing yields (a second listing; only counted)."""
        return sum(1 for _ in self)


def chunked(locations: Iterator[str] | Source, size: int) -> Iterator[list[str]]:
    """Consecutive lists of at most ``size`` locations."""
    chunk: list[str] = []
    for location in locations:
        chunk.append(location)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class FileBytes:
    """One file as read by a worker: its SHA-256 always, its bytes when within the limit."""

    sha256: str
    size: int
    data: bytes | None  # None: larger than the limit (hashed, not kept)


def read_location(location: str, max_bytes: int) -> FileBytes:
    """Read one file, local or URL, hashing all of it and keeping at most ``max_bytes``.

    Raises:
        OSError (or the fsspec back-end's own error): the file cannot be read.
    """
    digest, kept, size = hashlib.sha256(), bytearray(), 0
    with _open_binary(location) as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
            if size <= max_bytes:
                kept += block
    return FileBytes(digest.hexdigest(), size, bytes(kept) if size <= max_bytes else None)


# -- classification and listing ----------------------------------------------------------


def _classify(text: str) -> SourceSpec:
    if is_url(text):
        fs, path = _fsspec(text)
        if fs.isdir(path):
            return SourceSpec(text, "tree")
        if fs.isfile(path):
            return SourceSpec(text, "image" if is_image_file(Path(path)) else "list")
        if _GLOB_CHARS & set(path):
            return SourceSpec(text, "glob")
        raise DatasetError(f"{text}: no such folder, file or object")
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec(str(path), "tree")
    if path.is_file():
        return SourceSpec(str(path), "image" if is_image_file(path) else "list")
    if _GLOB_CHARS & set(text):
        return SourceSpec(str(path), "glob")
    raise DatasetError(f"{text}: no such folder, list file or glob")


def _list(spec: SourceSpec) -> Iterator[str]:
    if is_url(spec.text):
        yield from _list_url(spec)
    elif spec.kind == "tree":
        yield from _walk_images(os.path.abspath(spec.text))
    elif spec.kind == "image":
        yield os.path.abspath(spec.text)
    elif spec.kind == "glob":
        for match in glob.iglob(spec.text, recursive=True):
            if os.path.isfile(match) and is_image_file(Path(match)):
                yield os.path.abspath(match)
    else:
        yield from _read_list(spec.text, _open_text(spec.text), base=Path(spec.text).parent)


def _walk_images(root: str) -> Iterator[str]:
    """Image files under ``root``, depth first, each folder sorted."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if is_image_file(Path(name)):
                yield os.path.join(folder, name)


def _read_list(text: str, stream: IO[str], *, base: Path | None) -> Iterator[str]:
    """A list file: one location per line; blank lines and ``#`` comments are skipped,
    relative local paths are relative to the list file's folder."""
    hint = "not a text file of paths (give a folder, a glob, or one path per line)"
    with stream:
        try:
            for line in stream:
                item = line.strip()
                if not item or item.startswith("#"):
                    continue
                if "\0" in item:
                    raise DatasetError(f"{text}: {hint}")
                if is_url(item):
                    yield item
                else:
                    path = Path(item).expanduser()
                    yield os.path.abspath(
                        path if path.is_absolute() or base is None else base / path
                    )
        except UnicodeDecodeError:
            raise DatasetError(f"{text}: {hint}") from None


def _list_url(spec: SourceSpec) -> Iterator[str]:
    fs, path = _fsspec(spec.text)
    if spec.kind == "tree":
        found = sorted(fs.find(path))
    elif spec.kind == "glob":
        found = sorted(fs.glob(path))
    elif spec.kind == "image":
        found = [path]
    else:
        yield from _read_list(spec.text, _open_text(spec.text), base=None)
        return
    for item in found:
        if is_image_file(Path(item)):
            yield fs.unstrip_protocol(item)


def _fsspec(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise DatasetError(
            f"{url}: reading URLs needs fsspec (pip install fsspec, plus s3fs/gcsfs for the cloud)"
        ) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise DatasetError(f"{url}: fsspec cannot open this URL ({exc})") from None


def _open_binary(location: str) -> IO[bytes]:
    if is_url(location):
        fs, path = _fsspec(location)
        return fs.open(path, "rb")
    return open(location, "rb")  # noqa: SIM115 - the caller closes it


def _open_text(location: str) -> IO[str]:
    try:
        if is_url(location):
            fs, path = _fsspec(location)
            return fs.open(path, "rt", encoding="utf-8", errors="strict")
        return open(location, encoding="utf-8", errors="strict")  # noqa: SIM115
    except OSError as exc:
        raise DatasetError(f"{location}: cannot read the list file ({exc})") from None
