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


# -- one row per (content, bundle), and the migration from schema 1 ----------------------


def test_a_new_bundle_adds_its_own_row_for_the_same_content(store):
    first, written = store.upsert(record(bundle_id="old"))
    second, written_again = store.upsert(record(bundle_id="new", verdict="defect"))
    assert written and written_again and first["id"] != second["id"]
    assert store.get_by_sha("a" * 64, "old")["verdict"] == "good"
    assert store.get_by_sha("a" * 64, "new")["verdict"] == "defect"
    assert store.get_by_sha("a" * 64, "other") is None
    assert store.upsert(record(bundle_id="new"))[1] is False and store.count() == 2


def test_a_row_without_a_bundle_is_refused(store):
    with pytest.raises(ValueError, match="bundle_id"):
        store.upsert(record(bundle_id=None))
    assert store.count() == 0


def test_upsert_many_writes_in_one_transaction_and_reports_duplicates(store):
    store.upsert(record(sha="1" * 64))
    store.upsert(record(sha="2" * 64, status="rejected"))
    written = store.upsert_many(
        [record(sha="1" * 64), record(sha="2" * 64), record(sha="3" * 64), record(sha="3" * 64)]
    )
    assert written == [False, True, True, False]  # ok stays; rejected is retried; 3 once
    assert store.count() == 3 and store.get_by_sha("2" * 64, "b1")["status"] == "ok"
    assert store.upsert_many([]) == []


def test_upsert_many_is_all_or_nothing(store):
    with pytest.raises(ValueError):
        store.upsert_many([record(sha="1" * 64), record(sha="2" * 64, result={"x": float("inf")})])
    assert store.count() == 0


#: The schema-1 table as defectkit <= 0.x created it: ``sha256`` unique on its own.
V1_SQLITE = """CREATE TABLE inspections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, source TEXT NOT NULL,
    name TEXT, station TEXT, status TEXT NOT NULL, verdict TEXT, label TEXT,
    score REAL, bundle_id TEXT, error TEXT, result TEXT NOT NULL);
CREATE INDEX inspections_created ON inspections (created_at);
CREATE INDEX inspections_verdict ON inspections (verdict, id);
CREATE INDEX inspections_label ON inspections (label, id);
CREATE TABLE inspections_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO inspections_meta VALUES ('schema_version', '1');
INSERT INTO inspections (sha256, created_at, source, name, station, status, verdict, label,
    score, bundle_id, error, result) VALUES
  ('aa', 1.0, 'folder', 'a.png', 'L1', 'ok', 'good', 'good', 0.1, 'old', NULL, '{}'),
  ('bb', 2.0, 'folder', 'b.png', 'L1', 'rejected', NULL, NULL, NULL, NULL, 'truncated', '{}'),
  ('cc', 3.0, 'http', 'c.png', 'L1', 'ok', 'defect', 'dent', 0.9, 'old', NULL, '{"k": 1}');
DELETE FROM inspections WHERE sha256 = 'cc';"""


def test_a_schema_1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SQLITE)
    store = open_store(str(path))
    try:
        rows = {r["sha256"]: r for r in store.query(ResultQuery())}
        assert sorted(rows) == ["aa", "bb"] and rows["aa"]["id"] == 1 and rows["bb"]["id"] == 2
        assert rows["bb"]["bundle_id"] is None and rows["bb"]["error"] == "truncated"
        row, written = store.upsert(record(sha="aa", bundle_id="new"))  # adds, not collides
        assert written and row["id"] == 4, "ids continue after the deleted row 3, never reused"
        assert store.upsert(record(sha="aa", bundle_id="old"))[1] is False
        assert len(store.query(ResultQuery(verdict="good"))) == 2  # indexes still answer
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM inspections_meta").fetchone() == ("2",)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"inspections_created", "inspections_verdict", "inspections_label",
                "inspections_bundle_name"} <= indexes  # fmt: skip
    open_store(str(path)).close()  # a second open finds version 2 and changes nothing
