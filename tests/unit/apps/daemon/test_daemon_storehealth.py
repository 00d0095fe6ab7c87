"""A store the daemon can trust: deleted, overwritten or read-only stores are seen at once,
writes stop, health and metrics say so, and a restart does not start an empty store
beside the results of the old one."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app
from defectkit.apps.daemon.errors import ServeError
from defectkit.apps.daemon.store import Record, open_store
from defectkit.testing.daemon import png_bytes
from defectkit.testing.processes import hot_folder_state, wait_until

PNG = {"Content-Type": "image/png"}

# An outside reader (``sqlite3 results.db``, a dashboard): read-write connection, one
# read, close. Its close checkpoints and deletes the WAL whenever it holds the only lock.
OUTSIDE_READER = """
import sqlite3, sys, time
for _ in range(int(sys.argv[2])):
    conn = sqlite3.connect(sys.argv[1], timeout=30)
    conn.execute("SELECT count(*) FROM inspections").fetchone()
    conn.close()
    time.sleep(0.01)
"""


def store_errors(service) -> float:
    return sum(service.metrics.store_errors.value(operation=op) for op in ("read", "write"))


def test_a_deleted_store_is_seen_at_once_and_writes_stop(make_service, watch, tmp_path):
    db = tmp_path / "results.db"
    service = make_service(watch=watch)
    (watch / "first.png").write_bytes(png_bytes(10))
    wait_until(lambda: (watch / "done" / "first.png").exists(), 10, message="first file")
    with TestClient(create_app(service)) as client:
        assert client.get("/healthz").status_code == 200
        for suffix in ("", "-wal", "-shm"):
            os.unlink(f"{db}{suffix}")  # rm results.db*
        service._probed = (-1e9, None)  # the next health check probes at once
        health = client.get("/healthz")
        assert health.status_code == 503 and "deleted" in health.json()["store"]
        (watch / "second.png").write_bytes(png_bytes(20))
        wait_until(lambda: store_errors(service) >= 2, 10, message="a refused write")
        r = client.post("/v1/inspect", content=png_bytes(30), headers=PNG)
        assert r.status_code == 503
        assert "defectkit_store_up 0" in client.get("/metrics").text
    state = hot_folder_state(watch)
    assert state["done"] == ["first.png"], "nothing is finished without a row"
    assert "second.png" in state["inbox"] + state["processing"]
    assert not db.exists(), "no new empty database appeared behind the daemon's back"


def test_a_restart_refuses_a_missing_or_empty_store_beside_done(make_service, watch, tmp_path):
    db = tmp_path / "results.db"
    service = make_service(watch=watch)
    (watch / "a.png").write_bytes(png_bytes(10))
    wait_until(lambda: (watch / "done" / "a.png").exists(), 10, message="a file done")
    service.stop()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.unlink(f"{db}{suffix}")
    with pytest.raises(ServeError, match="does not exist.*--new-store"):
        make_service(watch=watch)
    assert not db.exists(), "the refused start created nothing"

    sqlite3.connect(db).close()  # an empty file where the store was
    with pytest.raises(ServeError, match="is empty.*--new-store"):
        make_service(watch=watch)

    fresh = make_service(watch=watch, new_store=True)  # told to: starts empty
    assert fresh.store.count() == 0


def test_a_store_overwritten_with_garbage_fails_health_and_uploads(make_service, tmp_path):
    service = make_service()
    with TestClient(create_app(service)) as client:
        assert client.post("/v1/inspect", content=png_bytes(10), headers=PNG).status_code == 200
        db = tmp_path / "results.db"
        with open(db, "r+b") as f:
            f.write(os.urandom(db.stat().st_size))
        service._probed = (-1e9, None)
        health = client.get("/healthz")
        assert health.status_code == 503 and "no longer a SQLite database" in health.json()["status"]
        r = client.post("/v1/inspect", content=png_bytes(20), headers=PNG)
        assert r.status_code == 503 and "store" in r.json()["error"]
        assert 'defectkit_store_errors_total{operation="write"}' in client.get("/metrics").text


def test_a_store_that_reads_but_cannot_write_fails_health(make_service, tmp_path):
    service = make_service()
    with TestClient(create_app(service)) as client:
        assert client.get("/healthz").status_code == 200
        # What a read-only mount or a lost write permission leaves: answers, no commits.
        service.store._conns["write"].close()
        service.store._conns["write"] = sqlite3.connect(
            f"file:{tmp_path / 'results.db'}?mode=ro", uri=True, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        service._probed = (-1e9, None)
        health = client.get("/healthz")
        assert health.status_code == 503 and "readonly" in health.json()["store"]
        assert service.metrics.store_errors.value(operation="write") == 1


def test_an_immutable_store_fails_health(make_service, tmp_path):
    db = tmp_path / "results.db"
    service = make_service()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs CAP_LINUX_IMMUTABLE (root on a file system with attributes)")
    try:
        with TestClient(create_app(service)) as client:
            service._probed = (-1e9, None)
            health = client.get("/healthz")
            assert health.status_code == 503 and "I/O" in health.json()["store"]
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_health_probes_at_most_once_a_second(make_service, monkeypatch):
    service = make_service()
    calls = []
    monkeypatch.setattr(service.store, "probe", lambda key, value: calls.append(key))
    for _ in range(5):
        assert service.health()[0] == 200
    assert len(calls) <= 1


def record(n: int) -> Record:
    return Record(
        sha256=f"{n:064x}", created_at=time.time(), source="folder", name=f"{n}.png",
        station="L1", status="ok", verdict="good", label="good", score=0.1, bundle_id="b1",
        error=None, result={"defects": []},
    )  # fmt: skip


def outside_count(db) -> int:
    """Rows a fresh connection in another process sees (what a crash would leave)."""
    script = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
    script += "'SELECT count(*) FROM inspections').fetchone()[0])"
    out = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True, text=True)
    return int(out.stdout)


def write_beside_outside_readers(store, db, first: int) -> int:
    """Write rows while another process opens, reads and closes the store; the count."""
    reader = subprocess.Popen([sys.executable, "-c", OUTSIDE_READER, str(db), "30"])
    written = first
    try:
        while reader.poll() is None or written == first:
            store.upsert(record(written))
            written += 1
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.wait()
    assert reader.returncode == 0
    return written


def test_outside_readers_do_not_stop_writes_or_hide_rows(tmp_path):
    db = tmp_path / "results.db"
    store = open_store(str(db))
    errors: list[str] = []
    store.on_error = errors.append
    try:
        written = write_beside_outside_readers(store, db, 0)
        assert errors == [], "an outside reader is not a store failure"
        # Every committed row is in the live WAL, not in a deleted copy only this
        # process still holds (which a crash would lose).
        assert outside_count(db) == written
    finally:
        store.close()


def test_closing_one_store_keeps_the_other_on_the_same_file_safe(tmp_path):
    db = tmp_path / "results.db"
    first, second = open_store(str(db)), open_store(str(db))
    first.upsert(record(0))
    first.close()
    try:
        written = write_beside_outside_readers(second, db, 1)
        assert outside_count(db) == written
    finally:
        second.close()
