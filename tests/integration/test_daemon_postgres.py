"""The PostgreSQL store against a real server: the store contract and a daemon using it.

Needs Debian's postgresql package (initdb, pg_ctl) and psycopg 3; skips with a message
otherwise. The server runs in a temp dir on a free 127.0.0.1 port, as the ``postgres``
user when the tests run as root, and is thrown away afterwards.
"""

import hashlib
import signal
import threading

import pytest

from defectkit.apps.daemon.store import Record, ResultQuery, open_store  # noqa: E402
from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 not installed: pip install 'psycopg[binary]'"
)


@pytest.fixture(scope="module")
def pg(postgres_server):
    """The throw-away server of tests/integration/conftest.py (or a skip saying why)."""
    return postgres_server


@pytest.fixture
def url(pg):
    """The server's URL with empty tables for each test."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS inspections, inspections_meta")
    return pg.url


def record(i: int, status: str = "ok", **kw) -> Record:
    defaults = dict(
        sha256=f"{i:064x}", created_at=1_700_000_000.0 + i, source="folder", name=f"{i}.png", station="L1",
        status=status, verdict="good" if status == "ok" else None, label="good" if status == "ok" else None,
        score=0.1, bundle_id="b", error=None if status == "ok" else "bad", result={"defects": [{"box": [1, 2, 3, 4]}]},
    )  # fmt: skip
    return Record(**(defaults | kw))


def test_store_contract_on_postgres(url):
    store = open_store(url)
    try:
        row, written = store.upsert(record(1, status="rejected"))
        assert written
        retried, written = store.upsert(record(1))
        assert written and retried["id"] == row["id"] and retried["status"] == "ok"
        dup, written = store.upsert(record(1, name="again.png"))
        assert not written and dup["name"] == "1.png"
        assert retried["result"] == {"defects": [{"box": [1, 2, 3, 4]}]}  # JSONB round trip
        for i in range(2, 12):
            store.upsert(
                record(i, verdict="defect" if i % 2 else "good", label="dent" if i % 2 else "good")
            )
        # Ids increase but may have gaps: PostgreSQL spends a sequence value on every conflict.
        everything = [r["id"] for r in store.query(ResultQuery())]
        assert everything == sorted(everything, reverse=True) and len(everything) == 11
        assert [r["id"] for r in store.query(ResultQuery(limit=3))] == everything[:3]
        assert [
            r["id"] for r in store.query(ResultQuery(limit=2, before_id=everything[2]))
        ] == everything[3:5]
        assert {r["label"] for r in store.query(ResultQuery(label="dent"))} == {"dent"}
        assert len(store.query(ResultQuery(since=1_700_000_005.0, until=1_700_000_008.0))) == 3
        assert store.count() == 11
    finally:
        store.close()


def test_concurrent_writers_on_two_stores_make_one_row(url):
    stores = [open_store(url), open_store(url)]  # two daemons sharing one database
    results = []

    def write(s):
        results.append(s.upsert(record(42))[1])

    threads = [threading.Thread(target=write, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and stores[0].count() == 1
    for s in stores:
        s.close()


def test_the_store_reconnects_after_a_server_restart(url, pg):
    store = open_store(url)
    try:
        store.upsert(record(1))
        pg.restart()
        assert store.get(1)["sha256"] == record(1).sha256
        store.upsert(record(2))
        assert store.count() == 2
    finally:
        store.close()


def test_daemon_on_postgres_survives_sigkill(url, tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1", delay_s=0.02)
    watch = tmp_path / "watch"
    watch.mkdir()
    files = {f"p{i:02d}.png": fake.png_bytes(30 if i % 2 else 220, tag=i) for i in range(30)}
    files["junk.png"] = b"junk"
    for name, data in files.items():
        (watch / name).write_bytes(data)
    args = ("--watch", str(watch), "--db", url, "--workers", "2", "--poll-interval", "0.05",
            "--settle-time", "0.2")  # fmt: skip
    daemon = kit.DaemonProcess(bundle, *args).wait_listening()
    kit.wait_until(
        lambda: len(kit.hot_folder_state(watch)["done"]) >= 8, 30, 0.01, message="progress"
    )
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    daemon = kit.DaemonProcess(bundle, *args).wait_listening()
    kit.wait_until(
        lambda: sum(map(len, kit.hot_folder_state(watch).values())) == len(files)
        and not kit.hot_folder_state(watch)["inbox"] and not kit.hot_folder_state(watch)["processing"],
        30, message="all files finished",
    )  # fmt: skip
    assert daemon.stop() == 0
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT sha256, status FROM inspections").fetchall()
    assert sorted(sha for sha, _ in rows) == sorted(
        hashlib.sha256(d).hexdigest() for d in files.values()
    )
    assert sorted(status for _, status in rows).count("rejected") == 1
    assert not (watch / ".defectkit" / "results.db").exists(), "nothing written to SQLite"


V1_POSTGRES = """CREATE TABLE inspections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL, name TEXT, station TEXT, status TEXT NOT NULL, verdict TEXT,
    label TEXT, score DOUBLE PRECISION, bundle_id TEXT, error TEXT, result JSONB NOT NULL);
CREATE TABLE inspections_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO inspections_meta VALUES ('schema_version', '1')"""


def test_a_schema_1_database_is_migrated_to_one_row_per_content_and_bundle(url):
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in V1_POSTGRES.split(";"):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO inspections (sha256, created_at, source, status, bundle_id, result) "
            "VALUES (%s, 1.0, 'folder', 'ok', 'old', '{}')", [record(1).sha256]
        )
    store = open_store(url)
    try:
        assert store.get_by_sha(record(1).sha256, "old")["id"] == 1
        assert store.upsert(record(1, bundle_id="new"))[1], "a new bundle adds a row"
        assert not store.upsert(record(1, bundle_id="old"))[1], "the old pair stays unique"
        assert store.count() == 2
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM inspections_meta").fetchone() == ("2",)
    open_store(url).close()  # opening a migrated database again changes nothing
