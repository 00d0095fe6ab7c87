"""Upload parsing: size caps, content types, multipart, and client file names with path tricks."""

import asyncio

import pytest

from defectkit.apps.daemon.uploads import (
    UploadError,
    check_content_type,
    parse_multipart,
    read_capped,
    safe_name,
)


@pytest.mark.parametrize(
    "name, expected",
    [("part.png", "part.png"), ("../../etc/passwd", "passwd"), ("..\\..\\win.ini", "win.ini"),
     ("/abs/path/x.png", "x.png"), ("..", None), (".", None), ("", None), (None, None),
     ("a\x00b\nc.png", "abc.png"), ("dir/", None), ("x" * 500, "x" * 200),
     ("C:\\cam\\img 01.jpg", "img 01.jpg")],
)  # fmt: skip
def test_safe_name_keeps_only_a_harmless_label(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("ctype", ["image/png", "image/jpeg; q=1", "application/octet-stream", "IMAGE/TIFF",
                                   "multipart/form-data; boundary=x"])  # fmt: skip
def test_accepted_content_types(ctype):
    check_content_type(ctype)


@pytest.mark.parametrize(
    "ctype", [None, "", "text/plain", "application/json", "application/x-www-form-urlencoded"]
)
def test_other_content_types_are_415(ctype):
    with pytest.raises(UploadError) as info:
        check_content_type(ctype)
    assert info.value.status == 415 and "image/" in info.value.message


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


def test_read_capped_stops_at_the_limit_even_without_content_length():
    assert asyncio.run(read_capped(_chunks(b"ab", b"cd"), 4, None)) == b"abcd"
    for declared in (None, "3"):
        with pytest.raises(UploadError) as info:
            asyncio.run(read_capped(_chunks(b"ab", b"cde"), 4, declared))
        assert info.value.status == 413
    with pytest.raises(UploadError) as info:
        asyncio.run(read_capped(_chunks(), 4, "5"))
    assert info.value.status == 413


def _multipart(parts, boundary="XyZ"):
    body = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_parse_multipart_picks_the_file_field():
    body, ctype = _multipart([("comment", None, b"hi"), ("file", "../../x.png", b"\x89PNGdata")])
    assert parse_multipart(body, ctype) == (b"\x89PNGdata", "x.png")


def test_parse_multipart_falls_back_to_the_first_file_part():
    body, ctype = _multipart([("upload", "a.png", b"AAA"), ("other", "b.png", b"BBB")])
    assert parse_multipart(body, ctype) == (b"AAA", "a.png")


@pytest.mark.parametrize("case", ["no_boundary", "no_file"])
def test_parse_multipart_errors_are_400(case):
    body, ctype = _multipart([("comment", None, b"hi")])
    if case == "no_boundary":
        ctype = "multipart/form-data"
    with pytest.raises(UploadError) as info:
        parse_multipart(body, ctype)
    assert info.value.status == 400
