"""The hot folder takes a file only once it has settled, keeps one row per file through
a reject and a retry, and reports what it leaves alone (issue 17)."""

import hashlib
import os
import shutil
import threading
import time

import pytest

from defectkit.apps.daemon import scanner, worker
from defectkit.apps.daemon.jobs import FOLDER, Job
from defectkit.apps.daemon.store import ResultQuery
from defectkit.testing.daemon import png_bytes
from defectkit.testing.processes import hot_folder_state, wait_until


def test_a_writer_that_pauses_less_than_the_settle_time_is_not_cut_in_half(make_service, watch):
    service = make_service(watch=watch, settle_time=1.0)
    data = png_bytes(40, size=256)

    def camera():
        with open(watch / "part.png", "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(0.6)  # 12 polls of 0.05 s: main took the half file after two
            f.write(data[len(data) // 2 :])

    writer = threading.Thread(target=camera)
    writer.start()
    writer.join(5)
    wait_until(lambda: service.store.count() == 1, 10, message="one row")
    wait_until(lambda: (watch / "done" / "part.png").exists(), 5, message="done")
    (row,) = service.store.query(ResultQuery())
    assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert hot_folder_state(watch)["rejected"] == []


@pytest.mark.parametrize("stage", ["decode", "inference"])
def test_a_file_that_changes_after_it_was_read_goes_back_unrecorded(make_service, watch, monkeypatch, stage):
    """The writer resumes after the claim: while the (half) file is decoded, and so
    would be rejected as truncated, or while a whole-looking file is inspected."""
    service = make_service(start=False, watch=watch)
    data = png_bytes(40, size=64)
    first = data[:-40] if stage == "decode" else data
    (watch / "late.png").write_bytes(first)
    job = Job(FOLDER, "late.png", path=service.hotfolder.claim("late.png"))

    def resume_writing():
        with open(job.path, "ab") as f:  # the camera's handle still points at the file
            f.write(data[-40:])

    if stage == "decode":
        real = worker.read_image
        monkeypatch.setattr(worker, "read_image", lambda *a, **k: (resume_writing(), real(*a, **k))[1])
    else:
        original = service.bundles.current.inspect
        service.bundles.current.inspect = lambda *a, **k: (resume_writing(), original(*a, **k))[1]
    assert service.queue.reserve_folder_slot(1)
    service.pipeline.run_batch([job])
    assert job.future.result(1).status == 409
    assert service.store.count() == 0, "no row for a file that was still being written"
    assert (watch / "late.png").read_bytes() == first + data[-40:], "back in the inbox, whole"
    state = hot_folder_state(watch)
    assert state["done"] == state["rejected"] == state["processing"] == []
    assert service.metrics.skipped.value(kind="still_writing") == 1


def test_a_file_rewritten_while_being_picked_up_ends_as_one_row_of_the_whole_file(
    make_service, watch, monkeypatch
):
    """The issue's case end to end: the camera resumes writing while the daemon decodes
    its half file. Main stored a "truncated" row with the half file's hash while
    rejected/ held the whole file, and a retry added a second row."""
    service = make_service(watch=watch)
    data = png_bytes(40, size=64)
    real, resumed = worker.read_image, []

    def decode_while_the_camera_finishes(*args, **kwargs):
        if not resumed:
            resumed.append(True)
            with open(watch / "processing" / "cam.png", "ab") as f:  # the camera's handle
                f.write(data[-40:])
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "read_image", decode_while_the_camera_finishes)
    (watch / "cam.png").write_bytes(data[:-40])
    wait_until(lambda: (watch / "done" / "cam.png").exists(), 10, message="the whole file done")
    (row,) = service.store.query(ResultQuery())
    assert row["status"] == "ok" and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert resumed and hot_folder_state(watch)["rejected"] == []


def test_a_rejected_file_retried_keeps_one_row(make_service, watch):
    """A guard (main passed it too): the rejected row's hash is that of the bytes in
    rejected/, so moving them back for a retry finds the same row."""
    service = make_service(watch=watch)
    truncated = png_bytes(40, size=64)[:100]
    (watch / "t.png").write_bytes(truncated)
    wait_until(lambda: (watch / "rejected" / "t.png").exists(), 10, message="rejected")
    (first,) = service.store.query(ResultQuery())
    rejected = watch / "rejected" / "t.png"
    assert first["sha256"] == hashlib.sha256(rejected.read_bytes()).hexdigest()
    shutil.move(rejected, watch / "t.png")  # the operator retries it
    wait_until(lambda: (watch / "rejected" / "t.png").exists(), 10, message="rejected again")
    rows = service.store.query(ResultQuery())
    assert len(rows) == 1 and rows[0]["id"] == first["id"] and rows[0]["status"] == "rejected"


def test_folders_fifos_and_dot_names_are_reported_once_each(make_service, watch, monkeypatch):
    logged = []
    real = scanner.log_event
    monkeypatch.setattr(scanner, "log_event", lambda event, **f: (logged.append((event, f)), real(event, **f)))
    service = make_service(watch=watch)
    (watch / "batch-7").mkdir()
    os.mkfifo(watch / "cam.png")
    (watch / "..png").write_bytes(png_bytes(10))
    (watch / "ok.png").write_bytes(png_bytes(10))
    wait_until(lambda: service.metrics.skipped.value(kind="hidden") == 1, 10, message="reports")
    time.sleep(0.5)  # ten more polls: still one report each
    skipped = {f["name"]: f["kind"] for event, f in logged if event == "skipped"}
    assert skipped == {"batch-7": "directory", "cam.png": "fifo", "..png": "hidden"}
    assert len([e for e, _ in logged if e == "skipped"]) == 3
    for kind in ("directory", "fifo", "hidden"):
        assert service.metrics.skipped.value(kind=kind) == 1
    assert hot_folder_state(watch)["done"] == ["ok.png"], "the daemon's own folders are not reported"
    assert (watch / "batch-7").is_dir() and (watch / "..png").exists(), "left in place"
