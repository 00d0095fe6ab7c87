"""Hot folder: stable-file detection, temp names, claims, moves without overwriting."""

import os

import pytest

from defectkit.apps.daemon.hotfolder import (
    FolderLayout,
    HotFolder,
    StabilityTracker,
    is_temporary_name,
)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def folder(watch):
    layout = FolderLayout.under(watch)
    layout.create()
    return HotFolder(layout, tracker=StabilityTracker(empty_grace_s=5.0, clock=Clock()))


@pytest.mark.parametrize(
    "name, temporary",
    [("img.png", False), ("img.PNG", False), ("IMG_0001.tif", False), ("img.png.part", True),
     ("img.PART", True), ("img.tmp", True), ("img.png~", True), (".img.png", True), ("~$img.png", True),
     ("img.crdownload", True), ("img.filepart", True), ("img.partial", True), ("x.swp", True)],
)  # fmt: skip
def test_temporary_names(name, temporary):
    assert is_temporary_name(name) is temporary


def test_a_file_is_taken_only_when_unchanged_across_two_polls(folder, watch):
    path = watch / "a.png"
    path.write_bytes(b"12")
    assert folder.poll() == []  # first sighting
    with open(path, "ab") as f:  # the camera is still writing
        f.write(b"34")
    assert folder.poll() == []
    assert folder.poll() == ["a.png"]  # unchanged since the last poll


def test_a_rewrite_with_the_same_size_is_seen_by_its_mtime(folder, watch):
    path = watch / "a.png"
    path.write_bytes(b"1234")
    folder.poll()
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert folder.poll() == []


def test_temp_names_dirs_and_fifos_are_ignored_until_renamed(folder, watch):
    (watch / "b.png.part").write_bytes(b"x" * 10)
    (watch / ".hidden.png").write_bytes(b"x")
    (watch / "subdir").mkdir()
    os.mkfifo(watch / "pipe.png")
    folder.poll()
    assert folder.poll() == []
    os.rename(watch / "b.png.part", watch / "b.png")
    folder.poll()
    assert folder.poll() == ["b.png"]


def test_empty_files_get_a_grace_period(folder, watch):
    clock = folder.tracker.clock
    (watch / "e.png").write_bytes(b"")
    folder.poll()
    clock.t = 1.0
    assert folder.poll() == []
    clock.t = 6.0
    assert folder.poll() == ["e.png"]


def test_symlinks_are_claimed_not_followed(folder, watch, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    (watch / "link.png").symlink_to(secret)
    folder.poll()
    assert folder.poll() == ["link.png"]
    claimed = folder.claim("link.png")
    assert claimed.is_symlink() and secret.read_bytes() == b"secret"


def test_the_tracker_forgets_files_that_left(folder, watch):
    for i in range(5):
        (watch / f"{i}.png").write_bytes(b"x")
    folder.poll()
    for i in range(5):
        (watch / f"{i}.png").unlink()
    folder.poll()
    assert folder.tracker._seen == {}


def test_claim_finish_and_name_collisions(folder, watch):
    layout = folder.layout
    (layout.done / "a.png").write_bytes(b"older file of the same name")
    (watch / "a.png").write_bytes(b"new")
    claimed = folder.claim("a.png")
    assert claimed == layout.processing / "a.png" and not (watch / "a.png").exists()
    final = folder.finish(claimed, rejected=False, sha256="deadbeef" * 8)
    assert final.name == "a-deadbeef.png" and final.read_bytes() == b"new"
    assert (layout.done / "a.png").read_bytes() == b"older file of the same name"
    (watch / "a.png").write_bytes(b"third")
    third = folder.finish(folder.claim("a.png"), rejected=False, sha256="deadbeef" * 8)
    assert third.name == "a-deadbeef-1.png"


def test_a_claim_never_overwrites_a_file_in_processing(folder, watch):
    (folder.layout.processing / "a.png").write_bytes(b"in flight")
    (watch / "a.png").write_bytes(b"new")
    claimed = folder.claim("a.png")
    assert claimed != folder.layout.processing / "a.png"
    assert (folder.layout.processing / "a.png").read_bytes() == b"in flight"


def test_rejected_files_get_a_reason_file(folder, watch):
    (watch / "bad.png").write_bytes(b"junk")
    final = folder.finish(
        folder.claim("bad.png"), rejected=True, sha256="ab" * 32, reason="not an image"
    )
    reason = (folder.layout.rejected / "bad.png.reason.txt").read_text()
    assert final == folder.layout.rejected / "bad.png"
    assert reason.startswith("not an image\n") and "ab" * 32 in reason


def test_leftovers_and_release(folder, watch):
    (watch / "x.png").write_bytes(b"x")
    claimed = folder.claim("x.png")
    assert folder.leftovers() == [claimed]
    assert folder.release(claimed) == watch / "x.png"
    assert folder.leftovers() == []
    assert folder.claim("gone.png") is None


def settling(watch, *, settle_s: float, wall: float) -> HotFolder:
    """A hot folder whose tracker runs on a test clock and a fixed wall clock."""
    layout = FolderLayout.under(watch)
    layout.create()
    return HotFolder(
        layout, tracker=StabilityTracker(settle_s=settle_s, clock=Clock(), wall_clock=lambda: wall)
    )


def test_a_file_must_stay_unchanged_for_the_settle_time(watch):
    folder = settling(watch, settle_s=2.0, wall=0.0)
    path = watch / "a.png"
    path.write_bytes(b"half")
    os.utime(path, ns=(0, 0))  # written at wall-clock 0, like now
    assert folder.poll() == []
    folder.tracker.clock.t = 1.0
    assert folder.poll() == [], "unchanged across two polls, but not for 2 s"
    folder.tracker.clock.t = 2.0
    assert folder.poll() == ["a.png"]


def test_a_file_written_long_before_it_appeared_is_taken_at_the_next_poll(watch):
    folder = settling(watch, settle_s=5.0, wall=100.0)
    path = watch / "renamed-in.png"
    path.write_bytes(b"whole")
    os.utime(path, ns=(0, 0))  # last written 100 s ago, then moved in
    folder.poll()
    assert folder.poll() == ["renamed-in.png"]


def test_a_future_mtime_does_not_count_as_settled(watch):
    folder = settling(watch, settle_s=2.0, wall=0.0)
    path = watch / "skewed.png"
    path.write_bytes(b"x")
    os.utime(path, ns=(10**12, 10**12))  # a share whose clock runs 1000 s ahead
    folder.poll()
    folder.tracker.clock.t = 1.0
    assert folder.poll() == []
    folder.tracker.clock.t = 2.5
    assert folder.poll() == ["skewed.png"]


def test_skips_are_reported_once_after_staying_and_again_after_coming_back(watch):
    from defectkit.apps.daemon.hotfolder import SkipReporter

    clock = Clock()
    layout = FolderLayout.under(watch)
    layout.create()
    folder = HotFolder(layout, skips=SkipReporter(after_s=1.0, clock=clock))
    (watch / "x.png.part").write_bytes(b"x")  # renamed before it stayed: never reported
    folder.poll()
    (watch / "x.png.part").rename(watch / "x.png")
    (watch / "sub").mkdir()
    folder.poll()
    assert folder.take_skipped() == []
    clock.t = 1.5
    folder.poll()
    folder.poll()
    assert folder.take_skipped() == [("sub", "directory")]
    (watch / "sub").rmdir()
    folder.poll()
    (watch / "sub").mkdir()
    folder.poll()
    clock.t = 3.0
    folder.poll()
    assert folder.take_skipped() == [("sub", "directory")]
