"""The pipeline: verdicts, duplicates, quarantine with a row, batch isolation, store outages."""

import os
import time

import pytest

from defectkit.apps.daemon.errors import StoreError
from defectkit.apps.daemon.jobs import FOLDER, HTTP, Job
from defectkit.apps.daemon.store import ResultQuery
from defectkit.testing.daemon import bad_inputs, png_bytes, write_fake_bundle


def run(service, *jobs):
    """Queue jobs as the inputs would and run them as one batch, synchronously."""
    for job in jobs:
        if job.source == FOLDER:
            assert service.queue.reserve_folder_slot(1)
    service.pipeline.run_batch(list(jobs))
    return [job.future.result(timeout=5) for job in jobs]


def folder_job(service, name, data):
    (service.layout.inbox / name).write_bytes(data)
    return Job(source=FOLDER, name=name, path=service.hotfolder.claim(name))


def test_verdicts_follow_the_image(make_service):
    service = make_service(start=False)
    dark, bright = run(
        service, Job(HTTP, "d.png", png_bytes(20)), Job(HTTP, "b.png", png_bytes(230))
    )
    assert (dark.status, dark.body["verdict"], dark.body["label"]) == (200, "good", "good")
    assert (bright.body["verdict"], bright.body["label"]) == ("defect", "scratch")
    assert bright.body["defects"] and bright.body["bundle_id"] == service.bundles.id
    assert set(bright.body["daemon_ms"]) == {"queue", "decode", "inference", "total"}
    assert service.metrics.inspections.value(source="http", verdict="defect", label="scratch") == 1


def test_the_same_content_is_inspected_once(make_service):
    service = make_service(start=False)
    first = run(service, Job(HTTP, "a.png", png_bytes(50)))[0]
    second = run(service, Job(HTTP, "again.png", png_bytes(50)))[0]
    assert second.body["duplicate"] and second.body["id"] == first.body["id"]
    assert service.store.count() == 1 and service.metrics.duplicates.value(source="http") == 1


@pytest.mark.parametrize("kind", sorted(bad_inputs()))
def test_bad_uploads_get_422_and_no_row(make_service, kind):
    service = make_service(start=False)
    (outcome,) = run(service, Job(HTTP, "x", bad_inputs()[kind]))
    assert outcome.status == 422 and outcome.body["error"]
    assert service.store.count() == 0
    assert service.metrics.rejected.value(source="http", reason="bad_image") == 1


@pytest.mark.parametrize("kind", sorted(bad_inputs()))
def test_bad_files_are_quarantined_with_a_row_and_a_reason(make_service, watch, kind):
    service = make_service(start=False, watch=watch)
    run(service, folder_job(service, f"{kind}.png", bad_inputs()[kind]))
    (row,) = service.store.query(ResultQuery())
    assert row["status"] == "rejected" and row["error"]
    assert (watch / "rejected" / f"{kind}.png").exists()
    assert row["error"].split(":")[0] in (watch / "rejected" / f"{kind}.png.reason.txt").read_text()
    assert list((watch / "processing").iterdir()) == []


def test_oversized_files_are_rejected_but_still_get_their_row(make_service, watch):
    service = make_service(start=False, watch=watch, max_upload_mb=0.001)
    run(service, folder_job(service, "big.png", png_bytes(10) + os.urandom(4096)))
    (row,) = service.store.query(ResultQuery())
    assert row["status"] == "rejected" and "limit" in row["error"]
    assert (watch / "rejected" / "big.png").exists()


def test_a_symlink_is_rejected_without_reading_its_target(make_service, watch, tmp_path):
    service = make_service(start=False, watch=watch)
    (tmp_path / "secret.png").write_bytes(png_bytes(1))
    (watch / "link.png").symlink_to(tmp_path / "secret.png")
    run(service, Job(FOLDER, "link.png", path=service.hotfolder.claim("link.png")))
    assert (watch / "rejected" / "link.png").is_symlink()
    assert "symbolic link" in (watch / "rejected" / "link.png.reason.txt").read_text()
    assert service.store.count() == 0


def test_one_failing_image_does_not_fail_its_batch(tmp_path, make_service):
    bundle = write_fake_bundle(tmp_path / "bundles" / "raising", raise_above=0.95)
    service = make_service(start=False, bundle=bundle)
    ok, failing = run(
        service, Job(HTTP, "ok.png", png_bytes(100)), Job(HTTP, "white.png", png_bytes(255))
    )
    assert ok.status == 200
    assert failing.status == 500 and "inference failed" in failing.body["error"]
    assert service.bundles.current.calls[-3:] == [2, 1, 1], "batch, then one by one"
    assert service.metrics.errors.value(kind="inference") == 1


def test_a_store_outage_hands_the_file_back_to_the_inbox(make_service, watch, monkeypatch):
    service = make_service(start=False, watch=watch)
    job = folder_job(service, "a.png", png_bytes(30))

    def down(*a, **k):
        raise StoreError("results store (sqlite): disk I/O error")

    monkeypatch.setattr(service.store, "get_by_sha", down)
    (outcome,) = run(service, job)
    assert outcome.status == 503 and outcome.headers["Retry-After"]
    assert (watch / "a.png").exists() and not any((watch / "processing").iterdir())
    assert service.queue._folder_in_flight == 0
    assert service.scanner._paused_until > time.monotonic()


def test_a_non_finite_score_is_an_error_not_a_verdict(make_service, monkeypatch):
    service = make_service(start=False)
    bundle = service.bundles.current
    original = bundle.inspect

    def nan_inspect(images, paths=None):
        results = original(images, paths)
        for r in results:
            r.score = float("nan")
        return results

    monkeypatch.setattr(bundle, "inspect", nan_inspect)
    (outcome,) = run(service, Job(HTTP, "a.png", png_bytes(30)))
    assert outcome.status == 500 and "non-finite" in outcome.body["error"]


def test_a_type_only_result_is_stored_with_no_verdict_and_no_score(make_service, monkeypatch):
    # A defect-sorting bundle (fitted without good shots) names a type and has no verdict:
    # its NaN score is by design, not a failed inference.
    service = make_service(start=False)
    bundle = service.bundles.current
    original = bundle.inspect

    def type_only(images, paths=None):
        results = original(images, paths)
        for r in results:
            r.score, r.verdict, r.mode = float("nan"), None, "type_only"
        return results

    monkeypatch.setattr(bundle, "inspect", type_only)
    (outcome,) = run(service, Job(HTTP, "a.png", png_bytes(30)))
    assert outcome.status == 200, outcome.body
    assert outcome.body["verdict"] is None and outcome.body["score"] is None
    assert outcome.body["mode"] == "type_only"
    row = service.store.get(1)  # the store's only row
    assert row["verdict"] is None and row["score"] is None and row["label"] == outcome.body["label"]
    assert 'verdict="none"' in service.metrics.render()


def test_workers_batch_what_is_queued(make_service):
    service = make_service(start=False, batch_size=4)
    jobs = [Job(HTTP, f"{i}.png", png_bytes(40, tag=i)) for i in range(6)]
    for job in jobs:
        service.queue.offer(job)
    service.start()
    assert all(j.future.result(timeout=10).status == 200 for j in jobs)
    assert max(service.bundles.current.calls[1:]) > 1  # [0] is the warm-up


def test_an_overlay_failure_does_not_fail_the_inspection(make_service, tmp_path, monkeypatch):
    service = make_service(start=False, overlays=tmp_path / "ov")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(service.pipeline.overlays, "write", full_disk)
    (outcome,) = run(service, Job(HTTP, "a.png", png_bytes(200)))
    assert outcome.status == 200 and outcome.body["overlay"] is None
    assert service.metrics.errors.value(kind="overlay") == 1


def test_a_new_bundle_inspects_content_the_old_one_already_did(make_service, tmp_path):
    """Duplicates are per bundle: after a reload the same image gets the new bundle's row."""
    service = make_service(start=False)
    first = run(service, Job(HTTP, "a.png", png_bytes(50)))[0]
    service.bundles.reload(write_fake_bundle(tmp_path / "bundles" / "v2", tag="v2"))
    second = run(service, Job(HTTP, "a.png", png_bytes(50)))[0]
    third = run(service, Job(HTTP, "again.png", png_bytes(50)))[0]
    assert not second.body["duplicate"] and second.body["bundle_id"] != first.body["bundle_id"]
    assert third.body["duplicate"] and third.body["id"] == second.body["id"]
    assert service.store.count() == 2
