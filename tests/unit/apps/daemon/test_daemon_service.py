"""Service wiring in-process: refusals at start, folder lock, recovery of processing/."""

import shutil

import pytest

from defectkit.apps.daemon.errors import ServeError
from defectkit.apps.daemon.jobs import FOLDER, Job
from defectkit.apps.daemon.store import ResultQuery
from defectkit.errors import BundleError
from defectkit.testing.daemon import png_bytes, write_fake_bundle
from defectkit.testing.processes import wait_until


def test_a_tampered_bundle_is_refused_at_start(make_service, fake_bundle):
    (fake_bundle / "model.bin").write_bytes(b"changed")
    with pytest.raises(BundleError, match="SHA-256"):
        make_service()


@pytest.mark.parametrize("damage", ["missing_file", "bad_version", "no_manifest"])
def test_partial_or_unknown_bundles_are_refused(make_service, tmp_path, damage):
    bundle = write_fake_bundle(
        tmp_path / "bundles" / "x", version=7 if damage == "bad_version" else 1
    )
    if damage == "missing_file":
        (bundle / "model.bin").unlink()
    if damage == "no_manifest":
        (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError):
        make_service(bundle=bundle)


def test_a_bundle_that_cannot_run_is_refused(make_service, tmp_path):
    bundle = write_fake_bundle(
        tmp_path / "bundles" / "dead", raise_above=0.1
    )  # warm-up image is gray
    with pytest.raises(BundleError, match="test inference"):
        make_service(bundle=bundle)


def test_one_daemon_per_hot_folder(make_service, watch, tmp_path):
    make_service(watch=watch)
    with pytest.raises(ServeError, match="another inspect serve"):
        make_service(watch=watch, db=str(tmp_path / "other.db"))


def test_files_left_in_processing_are_recovered_once(make_service, watch, tmp_path):
    # A previous run committed a.png's row and then died before moving it; b.png it never got to.
    first = make_service(start=False, watch=watch)
    (watch / "a.png").write_bytes(png_bytes(200))
    job = Job(FOLDER, "a.png", path=first.hotfolder.claim("a.png"))
    first.queue.reserve_folder_slot(1)
    first.hotfolder.finish = lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()
    )  # "crash" at the move
    with pytest.raises(KeyboardInterrupt):
        first.pipeline.run_batch([job])
    assert (watch / "processing" / "a.png").exists() and first.store.count() == 1
    (watch / "b.png").write_bytes(png_bytes(10))
    first.hotfolder.claim("b.png")
    first.stop()

    second = make_service(watch=watch)
    wait_until(lambda: not any((watch / "processing").iterdir()), 10, message="recovery")
    wait_until(lambda: second.store.count() == 2, 5, message="rows")
    assert sorted(p.name for p in (watch / "done").iterdir()) == ["a.png", "b.png"]
    rows = second.store.query(ResultQuery())
    assert (
        len({r["sha256"] for r in rows}) == 2
        and second.metrics.duplicates.value(source="folder") == 1
    )


def test_the_hot_folder_end_to_end(make_service, watch):
    service = make_service(watch=watch, workers=2)
    (watch / "good.png").write_bytes(png_bytes(10))
    (watch / "bad.png").write_bytes(png_bytes(240))
    (watch / "junk.png").write_bytes(b"not an image")
    (watch / "slow.png.part").write_bytes(png_bytes(10, tag=1))
    wait_until(lambda: service.store.count() == 3, 10, message="three rows")
    wait_until(lambda: len(list((watch / "rejected").glob("*.png"))) == 1, 5, message="quarantine")
    assert sorted(p.name for p in (watch / "done").iterdir()) == ["bad.png", "good.png"]
    assert (watch / "slow.png.part").exists(), "temp names are left alone"
    by_name = {r["name"]: r for r in service.store.query(ResultQuery())}
    assert by_name["good.png"]["verdict"] == "good" and by_name["bad.png"]["verdict"] == "defect"
    assert by_name["junk.png"]["status"] == "rejected"


def test_overlays_are_written_inside_their_folder(make_service, tmp_path):
    service = make_service(overlays=tmp_path / "ov")
    job = Job("http", "../../x.png", data=png_bytes(200))
    service.queue.offer(job)
    body = job.future.result(10).body
    assert (tmp_path / "ov" / body["overlay"]).is_file()
    assert [p.name for p in (tmp_path / "ov").rglob("*.png")] == [body["sha256"][:16] + ".png"]


def test_reload_path_confinement(make_service, fake_bundle, tmp_path):
    service = make_service()
    outside = write_fake_bundle(tmp_path / "elsewhere")
    with pytest.raises(PermissionError):
        service.reload(str(outside))
    link = fake_bundle.parent / "sneaky"
    link.symlink_to(outside)
    with pytest.raises(PermissionError):
        service.reload("sneaky")
    shutil.copytree(outside, fake_bundle.parent / "ok")
    assert service.reload("ok")["bundle_id"]
