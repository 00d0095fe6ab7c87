"""The SQLite store: WAL, one row per content hash, retries of failed rows, queries.

The same contract runs against a real PostgreSQL server in
tests/integration/test_daemon_postgres.py.
"""

import sqlite3
import threading
import time

import pytest

from defectkit.apps.daemon.errors import StoreError
from defectkit.apps.daemon.store import Record, ResultQuery, open_store, row_to_json


def record(sha="a" * 64, status="ok", **kw):
    base = dict(
        sha256=sha, created_at=kw.pop("created_at", time.time()), source="folder", name="x.png", station="L1",
        status=status, verdict="good" if status == "ok" else None, label="good" if status == "ok" else None,
        score=0.1 if status == "ok" else None, bundle_id="b1", error=None if status == "ok" else "bad",
        result={"probabilities": {"good": 0.9}, "defects": []},
    )  # fmt: skip
    base.update(kw)
    return Record(**base)


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "state" / "results.db"))
    yield s
    s.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(store, tmp_path):
    conn = store._conns["write"]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_content_hash_is_stored_once(store):
    row, written = store.upsert(record())
    assert written and row["id"] == 1 and row["verdict"] == "good"
    again, written = store.upsert(record(name="renamed.png", score=0.9))
    assert not written and again["name"] == "x.png" and again["score"] == 0.1
    assert store.count() == 1


def test_a_rejected_or_failed_row_is_replaced_by_a_retry(store):
    first, _ = store.upsert(record(status="rejected"))
    retried, written = store.upsert(record(status="ok"))
    assert written and retried["id"] == first["id"] and retried["status"] == "ok"
    assert store.count() == 1


def test_concurrent_writers_of_one_hash_make_one_row(store):
    outcomes = []

    def write():
        outcomes.append(store.upsert(record())[1])

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(True) == 1 and store.count() == 1


def test_query_filters_and_keyset_pagination(store):
    t0 = 1_700_000_000.0
    for i in range(25):
        defect = i % 5 == 0
        store.upsert(record(sha=f"{i:064d}", created_at=t0 + i, verdict="defect" if defect else "good",
                            label="scratch" if defect else "good", source="http" if i % 2 else "folder"))  # fmt: skip
    assert [r["id"] for r in store.query(ResultQuery(limit=3))] == [25, 24, 23]
    assert [r["id"] for r in store.query(ResultQuery(limit=3, before_id=23))] == [22, 21, 20]
    assert len(store.query(ResultQuery(verdict="defect"))) == 5
    assert {r["label"] for r in store.query(ResultQuery(label="scratch"))} == {"scratch"}
    window = store.query(ResultQuery(since=t0 + 10, until=t0 + 15))
    assert [r["created_at"] - t0 for r in window] == [14, 13, 12, 11, 10]
    assert all(r["source"] == "http" for r in store.query(ResultQuery(source="http")))
    assert store.query(ResultQuery(station="other")) == []


def test_row_to_json_merges_the_verdict_json(store):
    row, _ = store.upsert(record(created_at=0.0))
    out = row_to_json(row)
    assert out["created_at"] == "1970-01-01T00:00:00+00:00"
    assert out["probabilities"] == {"good": 0.9} and out["status"] == "ok" and "result" not in out


def test_non_json_results_are_refused_not_half_written(store):
    with pytest.raises(ValueError):
        store.upsert(record(result={"score": float("nan")}))
    assert store.count() == 0


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.db"
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE inspections_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer"):
        open_store(str(path))


def test_a_closed_store_raises_store_error(store):
    store.close()
    with pytest.raises(StoreError):
        store.get(1)
