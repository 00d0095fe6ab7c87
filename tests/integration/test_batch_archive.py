"""``inspect batch`` on a LocalCluster of 2 worker processes: the same verdicts as
``inspect predict``, exactly once after the driver or a worker is killed, and
``inspect compare`` over two bundles' rows.

Kill tests are paced by the daemon's test double (``delay_s`` per image) and bounded:
every wait has a deadline, and a kill that came too late to test anything fails
loudly instead of passing vacuously.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from defectkit.apps.batch.job import BatchConfig, run_batch
from defectkit.apps.daemon.store import open_store
from defectkit.cli import main
from defectkit.core.files import sha256_file
from defectkit.testing import processes as kit
from defectkit.testing.batch import FAKE_LOADER, write_archive, write_gray_archive
from defectkit.testing.daemon import write_fake_bundle

pytestmark = pytest.mark.slow


def rows(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM inspections ORDER BY id")]


def count_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def assert_exactly_once(db: Path, files: list[Path]) -> None:
    """One row per distinct content, each named by one of its files, no name twice."""
    stored = rows(db)
    names = Counter(r["name"] for r in stored)
    assert max(names.values()) == 1, [n for n, k in names.items() if k > 1]
    by_content = {sha256_file(f): f for f in files}
    assert sorted(r["sha256"] for r in stored) == sorted(by_content)
    assert {r["bundle_id"] for r in stored} and all(r["source"] == "batch" for r in stored)


def test_batch_rows_are_the_verdicts_of_inspect_predict(real_bundle, dask_client, tmp_path, capsys):
    files = write_archive(tmp_path / "archive" / "shots", n=6, seed=0)  # the fit's: good ones
    files += write_archive(tmp_path / "archive" / "new", n=12, seed=5)
    db = tmp_path / "results.db"
    seen = []
    store = open_store(str(db))
    try:
        config = BatchConfig(bundle=real_bundle, sources=(str(tmp_path / "archive"),), store=str(db),
                             chunk_size=5)  # fmt: skip
        summary = run_batch(config, dask_client, store, on_cluster=lambda c, w: seen.extend(w))
    finally:
        store.close()
    assert summary.tally.inspected == len(files) and summary.tasks == 4
    assert len(seen) == 2 and not any(w.torch_imported for w in seen), "workers stay torch-free"
    assert {w.bundle_id for w in seen} == {summary.bundle_id} and {w.engine for w in seen} == {
        "onnxruntime"
    }

    capsys.readouterr()
    assert main(["predict", str(real_bundle), *map(str, files), "--json"]) == 0
    predicted = {d["path"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    stored = {r["name"]: r for r in rows(db)}
    assert sorted(stored) == sorted(predicted) == sorted(str(f) for f in files)
    verdicts = Counter()
    for name, expected in predicted.items():
        row, body = stored[name], json.loads(stored[name]["result"])
        assert (row["verdict"], row["label"]) == (expected["verdict"], expected["label"]), name
        assert row["score"] == pytest.approx(expected["score"], rel=1e-5, abs=1e-6)
        assert body["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
        keys = ("box", "type", "severity", "sentence")
        assert [[d.get(k) for k in keys] for d in body["defects"]] == [
            [d.get(k) for k in keys] for d in expected["defects"]]  # fmt: skip
        assert body["caption"] == expected["caption"]
        verdicts[row["verdict"]] += 1
    assert set(verdicts) == {"good", "defect"}, f"a test that compares one verdict only: {verdicts}"


def test_a_killed_driver_resumes_and_ends_with_every_file_once(tmp_path):
    """``kill -9`` the whole ``inspect batch`` mid-run, run it again: one row per file."""
    files = write_gray_archive(tmp_path / "archive", 160)
    (tmp_path / "archive" / "000" / "copy.png").write_bytes(files[3].read_bytes())  # same content
    (tmp_path / "archive" / "000" / "junk.png").write_bytes(b"not an image")
    files += [tmp_path / "archive" / "000" / n for n in ("copy.png", "junk.png")]
    bundle = write_fake_bundle(tmp_path / "bundle", delay_s=0.04)
    db = tmp_path / "results.db"
    argv = [sys.executable, "-m", "defectkit.testing.batch", str(bundle), str(tmp_path / "archive"),
            "--store", str(db), "--workers", "2", "--chunk-size", "4"]  # fmt: skip
    driver = subprocess.Popen(argv, env=kit.subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        kit.wait_until(lambda: count_rows(db) >= 24, 120, 0.02, message="first rows committed")
        workers = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    at_kill = count_rows(db)
    assert at_kill < len(files) - 20, "the run ended before the kill: give it more work"
    assert workers, "the LocalCluster's worker processes"
    gone = psutil.wait_procs(workers, timeout=20)[1] == []
    assert gone, "worker processes outlive a killed driver"

    again = subprocess.run(
        argv, env=kit.subprocess_env(), capture_output=True, text=True, timeout=180
    )
    assert again.returncode == 0, again.stderr[-2000:]
    done = int(again.stdout.split(" already done")[0].rsplit(", ", 1)[-1].replace(",", ""))
    assert done >= at_kill - 1, again.stdout  # resumed: committed files were not read again
    assert_exactly_once(db, files)
    junk = [r for r in rows(db) if r["name"].endswith("junk.png")]
    assert junk[0]["status"] == "rejected" and "not an image" in junk[0]["error"]


def test_a_worker_killed_mid_task_is_retried_without_duplicates(dask_client, tmp_path):
    files = write_gray_archive(tmp_path / "archive", 80)
    bundle = write_fake_bundle(tmp_path / "bundle", delay_s=0.08)
    db = tmp_path / "results.db"
    config = BatchConfig(bundle=bundle, sources=(str(tmp_path / "archive"),), store=str(db),
                         chunk_size=4, loader=FAKE_LOADER)  # fmt: skip
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        kit.wait_until(lambda: count_rows(db) >= 8, 120, 0.02, message="first rows")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            busy = [w for w, keys in dask_client.processing().items() if keys]
            if busy:
                pid = dask_client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    store = open_store(str(db))
    try:
        summary = run_batch(config, dask_client, store)
    finally:
        store.close()
        killer.join(60)
    assert killed, "no worker was busy to kill"
    assert summary.tally.inspected == len(files) and summary.tally.errors == 0
    assert summary.split_chunks == 0, "one death is a retry, not a poison file"
    assert_exactly_once(db, files)
    kit.wait_until(lambda: len(dask_client.scheduler_info()["workers"]) == 2, 60, message="restart")
    assert killed[0] not in dask_client.run(os.getpid).values()


def test_compare_lists_the_parts_two_bundles_disagree_on(dask_client, tmp_path, capsys):
    """Two bundles over one archive (the double's verdict is brightness > threshold), then
    ``inspect compare`` as a table, JSON and an HTML page with the overlays."""
    files = write_gray_archive(tmp_path / "archive", 12, dark_every=3)  # 4 dark, 8 bright
    db = tmp_path / "results.db"
    ids = []
    for tag, threshold in (("old", 0.5), ("new", 0.9)):  # bright parts turn good under "new"
        bundle = write_fake_bundle(tmp_path / tag, threshold=threshold, tag=tag)
        store = open_store(str(db))
        try:
            config = BatchConfig(bundle=bundle, sources=(str(tmp_path / "archive"),), store=str(db),
                                 loader=FAKE_LOADER)  # fmt: skip
            ids.append(run_batch(config, dask_client, store).bundle_id)
        finally:
            store.close()
    assert count_rows(db) == 2 * len(files), "a new bundle adds rows, it does not collide"

    capsys.readouterr()
    assert main(["compare", str(db), "--bundle", ids[0][:6], "--bundle", ids[1], "--json",
                 "--html", str(tmp_path / "page")]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert (out["both"], out["verdict_changed"], out["only_old"], out["only_new"]) == (12, 8, 0, 0)
    assert {(t["old"], t["new"]): t["parts"] for t in out["transitions"]} == {
        ("scratch", "good"): 8, ("good", "good"): 4}  # fmt: skip
    assert {p["name"] for p in out["changed"]} == {str(f) for i, f in enumerate(files) if i % 3}
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count("-old.png") == 8 and page.count("-new.png") == 8
    assert len(list((tmp_path / "page" / "overlays").glob("*.png"))) == 16

    assert main(["compare", str(db), "--bundle", ids[0], "--bundle", ids[1], "--limit", "3"]) == 0
    text = capsys.readouterr().out
    assert "verdict changed: 8" in text and "scratch -> good: 8" in text
    assert "changed parts (3 shown)" in text
