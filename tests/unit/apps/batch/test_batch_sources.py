"""SOURCE arguments -> locations: folder trees, list files, globs, single images, URLs."""

import hashlib

import pytest

from defectkit.apps.batch.sources import Source, chunked, is_url, read_location
from defectkit.errors import DatasetError


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    for rel in ("b/2.png", "a/1.PNG", "a/z/3.jpg", "0.bmp", "notes.txt", "a/Thumbs.db"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())
    return root


def test_a_folder_is_walked_depth_first_sorted_images_only(archive):
    assert [p.replace(str(archive), "") for p in Source([str(archive)])] == [
        "/0.bmp", "/a/1.PNG", "/a/z/3.jpg", "/b/2.png"]  # fmt: skip


def test_a_list_file_skips_comments_and_resolves_relative_paths_at_its_folder(
    archive, tmp_path, monkeypatch
):
    listing = archive / "list.txt"
    listing.write_text(f"# last month\n\nb/2.png\n  {archive}/0.bmp  \ns3://bucket/x.png\n")
    monkeypatch.chdir(tmp_path)  # relative to the list, not the working folder
    assert list(Source([str(listing)])) == [
        str(archive / "b/2.png"),
        str(archive / "0.bmp"),
        "s3://bucket/x.png",
    ]


def test_a_glob_may_recurse_and_several_sources_chain(archive, monkeypatch):
    monkeypatch.chdir(archive)
    found = list(Source(["**/*.png", "0.bmp"]))  # 1.PNG: globs match case as the OS does
    assert found == [str(archive / "b/2.png"), str(archive / "0.bmp")]
    assert all(p.startswith("/") for p in found), (
        "locations are absolute: a resume from elsewhere matches"
    )
    assert Source([str(archive)]).count() == 4


def test_file_urls_are_read_through_fsspec(archive):
    pytest.importorskip("fsspec")
    found = list(Source([f"file://{archive}/a"]))
    assert found == [f"file://{archive}/a/1.PNG", f"file://{archive}/a/z/3.jpg"]
    assert read_location(found[0], 100).data == b"a/1.PNG"


@pytest.mark.parametrize("spec, message", [
    ("missing", "no such folder, list file or glob"),
    ("nothing*.png", "no image files found (glob)"),
])  # fmt: skip
def test_sources_that_name_nothing_are_clear_errors(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(Source([spec]))


def test_an_empty_folder_and_a_binary_list_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files found"):
        Source([str(tmp_path / "empty")]).count()
    (tmp_path / "list.dat").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DatasetError, match="not a text file of paths"):
        list(Source([str(tmp_path / "list.dat")]))
    with pytest.raises(DatasetError, match="no SOURCE"):
        Source([])


def test_read_location_hashes_everything_and_keeps_at_most_the_limit(tmp_path):
    data = bytes(range(256)) * 5000  # > one read block
    (tmp_path / "f.bin").write_bytes(data)
    small = read_location(str(tmp_path / "f.bin"), len(data))
    big = read_location(str(tmp_path / "f.bin"), len(data) - 1)
    assert small.data == data and big.data is None
    assert small.sha256 == big.sha256 == hashlib.sha256(data).hexdigest() and big.size == len(data)
    with pytest.raises(FileNotFoundError):
        read_location(str(tmp_path / "gone.png"), 10)


def test_chunks_and_urls():
    assert list(chunked(iter("abcde"), 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert is_url("s3://b/k.png") and is_url("file:///x") and not is_url("/a/b.png")
    assert not is_url("C:\\images\\a.png") and not is_url("relative/x.png")
