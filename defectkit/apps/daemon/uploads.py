"""Reading an upload: size limit, time limit, content type, multipart, a safe name.

The whole body is read into memory under a hard cap (never spooled to a temporary
file: the daemon writes only inside its own folders), and multipart is parsed from
that buffer. The client's file name is kept only as a label in the row - sanitised,
and never used to build a path.

Uploads are bounded by the bytes they hold (:class:`UploadBudget`), not by how many
connections are open: a client trickling a byte a second holds a byte, never a slot
the line's cameras need, and ``--body-timeout`` ends it (408).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header

RAW_TYPES = frozenset({"application/octet-stream"})
MULTIPART = "multipart/form-data"
FILE_FIELDS = ("file", "image")
MAX_NAME_CHARS = 200


class UploadError(Exception):
    """An upload refused before decoding; ``status`` is the HTTP code (400/413/415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    """The media type if we accept it, else :class:`UploadError` 415 saying what to send."""
    kind = media_type(content_type)
    if kind in RAW_TYPES or kind == MULTIPART or kind.startswith("image/"):
        return kind
    raise UploadError(
        415,
        f"unsupported Content-Type {kind or '(none)'!r}: send the image bytes as image/* or "
        "application/octet-stream, or multipart/form-data with a 'file' field",
    )


class UploadBudget:
    """Bytes held by uploads being received or waiting for their verdict.

    Used from the event loop only (no lock). Each upload takes what it has received so
    far and gives it all back when it is answered.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.held = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.capacity:
            return False
        self.held += n
        return True

    def give_back(self, n: int) -> None:
        self.held -= n


BUSY = "too many upload bytes in progress; retry later"


async def read_capped(
    stream: AsyncIterator[bytes], limit: int, declared: str | None, *,
    timeout: float | None = None, budget: UploadBudget | None = None, held: list[int] | None = None,
) -> bytes:  # fmt: skip
    """The body, or :class:`UploadError`: 413 as soon as it exceeds ``limit`` bytes, 408
    when it has not all arrived within ``timeout`` seconds, 503 when ``budget`` is spent.

    Bytes taken from ``budget`` are added to ``held[0]``; the caller gives them back.
    """
    too_large = UploadError(
        413, f"upload larger than the limit of {limit:,} bytes (--max-upload-mb)"
    )
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise UploadError(400, "invalid Content-Length") from None
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks, total = [], 0
    iterator = aiter(stream)
    while True:
        try:
            if deadline is None:
                chunk = await anext(iterator)
            else:
                chunk = await asyncio.wait_for(anext(iterator), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise UploadError(
                408, f"the body did not arrive within {timeout:g} s (--body-timeout); send it faster"
            ) from None
        total += len(chunk)
        if total > limit:
            raise too_large
        if budget is not None:
            if not budget.take(len(chunk)):
                raise UploadError(503, BUSY)
            held[0] += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """(file bytes, client file name) of the ``file``/``image`` part, or the first file part."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary")
    parts: list[dict] = []
    header: dict[str, bytearray] = {}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.setdefault("field", bytearray()).extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header.setdefault("value", bytearray()).extend(data[start:end])

    def on_header_end() -> None:
        name = bytes(header.get("field", b"")).decode("latin-1").lower()
        parts[-1]["headers"][name] = bytes(header.get("value", b""))
        header.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - any parser complaint is a malformed request
        raise UploadError(400, f"malformed multipart body ({exc})") from None
    chosen = None
    for part in parts:
        _, disp = parse_options_header(part["headers"].get("content-disposition", b""))
        field_name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        if field_name in FILE_FIELDS or (chosen is None and filename is not None):
            chosen = (
                bytes(part["data"]),
                None if filename is None else filename.decode("utf-8", "replace"),
            )
            if field_name in FILE_FIELDS:
                break
    if chosen is None:
        raise UploadError(400, "multipart/form-data without a 'file' part")
    return chosen[0], safe_name(chosen[1])


def safe_name(name: str | None) -> str | None:
    """A client-supplied file name reduced to a harmless label.

    Keeps the last path component (both ``/`` and ``\\`` separators), drops control
    characters, and caps the length. ``../../etc/passwd`` becomes ``passwd``.
    """
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        return None
    return name[:MAX_NAME_CHARS]
