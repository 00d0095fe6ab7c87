"""``inspect batch`` into a PostgreSQL store (where several machines write), then resumed
and compared there. Skips with a message when PostgreSQL is not available."""

from __future__ import annotations

import pytest

from defectkit.apps.batch.compare import compare_bundles
from defectkit.apps.batch.job import BatchConfig, run_batch
from defectkit.apps.batch.progress import Tally
from defectkit.apps.daemon.store import ResultQuery, open_store
from defectkit.testing.batch import FAKE_LOADER, write_gray_archive
from defectkit.testing.daemon import write_fake_bundle

pytestmark = pytest.mark.slow


@pytest.fixture
def url(postgres_server):
    import psycopg

    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS inspections, inspections_meta")
    return postgres_server.url


def test_an_archive_run_on_postgres_is_exactly_once_and_comparable(dask_client, url, tmp_path):
    files = write_gray_archive(tmp_path / "archive", 30, dark_every=3)
    (tmp_path / "archive" / "junk.png").write_bytes(b"junk")
    store = open_store(url)
    try:
        summaries = []
        for tag, threshold in (("old", 0.5), ("new", 0.9), ("new", 0.9)):  # the last one resumes
            bundle = write_fake_bundle(tmp_path / tag, threshold=threshold, tag=tag)
            config = BatchConfig(bundle=bundle, sources=(str(tmp_path / "archive"),), store=url,
                                 chunk_size=4, loader=FAKE_LOADER)  # fmt: skip
            summaries.append(run_batch(config, dask_client, store))
        assert summaries[0].tally == Tally(inspected=30, rejected=1)
        assert summaries[1].tally == Tally(inspected=30, rejected=1), "a new bundle adds its rows"
        assert summaries[2].tally == Tally(skipped=31) and store.count() == 62
        rows = store.query(ResultQuery(source="batch", limit=100))
        assert sorted(r["name"] for r in rows) == sorted(
            [str(f) for f in files] * 2 + [str(tmp_path / "archive/junk.png")] * 2
        )
        assert isinstance(rows[0]["result"], dict), "JSONB, queried like the daemon's rows"
        comparison = compare_bundles(store, summaries[0].bundle_id, summaries[1].bundle_id)
        assert (comparison.both, comparison.verdict_changed, comparison.only_old) == (30, 20, 0)
    finally:
        store.close()
