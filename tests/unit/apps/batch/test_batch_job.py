"""The driver: resume by location, --retry-failed, chunks that kill workers, task errors.

Whole runs use an in-process Dask cluster (threads: quick to start); the process-based
LocalCluster and the kill tests are in tests/integration/test_batch_archive.py.
"""

from types import SimpleNamespace

import pytest

from defectkit.apps.batch.cluster import ClusterError
from defectkit.apps.batch.job import BatchConfig, BatchSummary, _Run, run_batch
from defectkit.apps.batch.progress import Tally
from defectkit.apps.batch.work import ChunkJob
from defectkit.apps.daemon.store import open_store
from defectkit.errors import BundleError, ConfigError
from defectkit.testing.batch import FAKE_LOADER, write_gray_archive
from defectkit.testing.daemon import png_bytes, write_fake_bundle


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as c:
        yield c


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "results.db"))
    yield s
    s.close()


def config(tmp_path, **kw):
    bundle = write_fake_bundle(tmp_path / "bundle")
    options = {"chunk_size": 3, "loader": FAKE_LOADER} | kw
    return BatchConfig(
        bundle=bundle, sources=(str(tmp_path / "archive"),), store="unused", **options
    )


def test_a_second_run_skips_every_file_it_finds_in_the_store(client, store, tmp_path):
    write_gray_archive(tmp_path / "archive", 10)
    (tmp_path / "archive" / "junk.png").write_bytes(b"junk")
    first = run_batch(config(tmp_path), client, store)
    assert (first.total, first.tally.inspected, first.tally.rejected) == (11, 10, 1)
    assert first.tasks == 4 and store.count() == 11
    again = run_batch(config(tmp_path), client, store)
    assert again.tally == Tally(skipped=11) and again.tasks == 0 and store.count() == 11


def test_retry_failed_reads_rejected_files_again(client, store, tmp_path):
    write_gray_archive(tmp_path / "archive", 4)
    junk = tmp_path / "archive" / "junk.png"
    junk.write_bytes(b"junk")
    run_batch(config(tmp_path), client, store)
    junk.write_bytes(png_bytes(40))  # mended (new content: a new row; the old one stays rejected)
    assert run_batch(config(tmp_path), client, store).tally == Tally(skipped=5)
    retried = run_batch(config(tmp_path, retry_failed=True), client, store)
    assert retried.tally == Tally(skipped=4, inspected=1)


def test_the_same_content_under_two_names_is_one_row(client, store, tmp_path):
    files = write_gray_archive(tmp_path / "archive", 3)
    (tmp_path / "archive" / "copy.png").write_bytes(files[0].read_bytes())
    summary = run_batch(config(tmp_path), client, store)
    assert summary.tally == Tally(inspected=3, duplicates=1) and store.count() == 3


def test_a_bundle_that_does_not_load_fails_before_any_file(client, store, tmp_path):
    write_gray_archive(tmp_path / "archive", 2)
    cfg = config(tmp_path)
    (cfg.bundle / "model.bin").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="SHA-256"):
        run_batch(cfg, client, store)
    assert store.count() == 0


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--chunk-size"):
        config(tmp_path, chunk_size=0)
    with pytest.raises(ConfigError, match="--max-file-mb"):
        config(tmp_path, max_file_mb=0)


# -- what the driver does with a failed task (stand-in client and futures) ---------------


class FakeClient:
    def __init__(self):
        self.submitted = []

    def submit(self, fn, job, **kw):
        self.submitted.append(job.locations)
        return object()

    def cancel(self, futures):
        pass


def failed(exc, status="error"):
    return SimpleNamespace(status=status, exception=lambda: exc)


def a_run(store):
    config = BatchConfig(bundle="b", sources=("x",), store="-")
    summary = BatchSummary("bundle1", 0, Tally(), 0.0)
    return _Run(config, FakeClient(), store, ChunkJob("b", "bundle1", ()), summary, None)


def test_a_chunk_that_kills_its_workers_is_halved_down_to_the_file(store):
    from distributed import KilledWorker

    run = a_run(store)
    run._finish(failed(KilledWorker("k", "w", 3)), ChunkJob("b", "bundle1", ("a", "b", "c")))
    assert run.client.submitted == [("a",), ("b", "c")] and run.summary.split_chunks == 1
    run._finish(failed(KilledWorker("k", "w", 3)), ChunkJob("b", "bundle1", ("a",)))
    (row,) = store.select("SELECT * FROM inspections")
    assert (row["name"], row["status"], row["bundle_id"]) == ("a", "error", "bundle1")
    assert "died every time" in row["error"] and run.summary.tally.errors == 1


def test_task_failures_end_the_run_with_a_clear_error(store):
    run = a_run(store)
    job = ChunkJob("b", "bundle1", ("a",))
    with pytest.raises(BundleError, match="copy"):
        run._finish(failed(BundleError("copy the bundle")), job)
    with pytest.raises(ClusterError, match="serve extra"):
        run._finish(failed(ModuleNotFoundError("No module named 'defectkit'")), job)
    with pytest.raises(ClusterError, match="run the same command again"):
        run._finish(failed(None, status="cancelled"), job)
    with pytest.raises(RuntimeError, match="a task failed on a"):
        run._finish(failed(ZeroDivisionError("x")), job)
    assert store.count() == 0


def test_the_daemon_serves_the_archive_rows_like_its_own(client, tmp_path):
    """One schema: ``GET /v1/results`` of a daemon on the same store lists the batch rows."""
    from fastapi.testclient import TestClient

    from defectkit.apps.daemon.api import create_app
    from defectkit.apps.daemon.config import ServeConfig
    from defectkit.apps.daemon.service import Service
    from defectkit.testing.daemon import load_fake_bundle

    files = write_gray_archive(tmp_path / "archive", 4)
    db = tmp_path / "shared.db"
    store = open_store(str(db))
    try:
        bundle_id = run_batch(config(tmp_path), client, store).bundle_id
    finally:
        store.close()
    service = Service(ServeConfig(bundle=tmp_path / "bundle", db=str(db)), loader=load_fake_bundle)
    try:
        with TestClient(create_app(service)) as api:
            body = api.get("/v1/results", params={"source": "batch"}).json()
    finally:
        service.stop()
    assert sorted(r["name"] for r in body["results"]) == sorted(map(str, files))
    assert {r["bundle_id"] for r in body["results"]} == {bundle_id}
    assert {r["verdict"] for r in body["results"]} == {"good", "defect"} and body["results"][0][
        "caption"
    ]
