"""SIGKILL the daemon mid-batch, several times: after a restart nothing is lost or doubled.

Every input file ends in done/ or rejected/, and every distinct content has exactly one
row - checked against the files' own SHA-256, straight from the database.
"""

import hashlib
import signal
import sqlite3
from pathlib import Path

from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

KILLS = 3


def make_inputs(watch: Path) -> dict[str, bytes]:
    """60 files: good and defective images, bad files, and one duplicate pair."""
    files = {
        f"img-{i:03d}.png": fake.png_bytes(20 if i % 3 else 230, size=48, tag=i) for i in range(50)
    }
    bad = fake.bad_inputs()
    files |= {f"truncated-{i}.png": bad["truncated"] + bytes([i]) for i in range(3)}
    files |= {f"text-{i}.png": bad["not_an_image"] + bytes([i]) for i in range(3)}
    files |= {"empty.png": b"", "bomb.png": bad["bomb"]}
    files["img-copy.png"] = files["img-007.png"]  # same content, another name
    for name, data in files.items():  # as cameras do: write a temp name, then rename
        (watch / f"{name}.part").write_bytes(data)
        (watch / f"{name}.part").rename(watch / name)
    return files


def finished(watch: Path) -> int:
    state = kit.hot_folder_state(watch)
    return len(state["done"]) + len(state["rejected"])


def test_sigkill_mid_batch_several_times_loses_nothing(tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1", delay_s=0.03)
    watch = tmp_path / "watch"
    watch.mkdir()
    files = make_inputs(watch)
    args = ("--watch", str(watch), "--workers", "2", "--batch-size", "4", "--poll-interval", "0.05",
            "--settle-time", "0.2")  # fmt: skip

    killed_with_work_in_processing = 0
    for _ in range(KILLS):
        daemon = kit.DaemonProcess(bundle, *args).wait_listening()
        target = min(finished(watch) + 8, len(files) - 5)
        kit.wait_until(lambda t=target: finished(watch) >= t, 60, 0.01, message="progress")
        killed_with_work_in_processing += bool(kit.hot_folder_state(watch)["processing"])
        daemon.signal(signal.SIGKILL)
        assert daemon.wait(10) == -signal.SIGKILL
    assert finished(watch) < len(files), "the kills must happen before the work is done"
    assert killed_with_work_in_processing >= 1, "no kill caught a file in processing/"

    daemon = kit.DaemonProcess(bundle, *args).wait_listening()
    kit.wait_until(lambda: finished(watch) == len(files), 60, message="all files finished")
    assert daemon.stop() == 0

    state = kit.hot_folder_state(watch)
    assert state["inbox"] == [] and state["processing"] == []
    assert sorted(state["done"] + state["rejected"]) == sorted(files)
    with sqlite3.connect(watch / ".defectkit" / "results.db") as conn:
        rows = conn.execute("SELECT sha256, status FROM inspections").fetchall()
    by_sha = dict(rows)
    assert len(rows) == len(by_sha) == len({hashlib.sha256(d).hexdigest() for d in files.values()})
    for name, data in files.items():
        status = by_sha[hashlib.sha256(data).hexdigest()]
        folder = "done" if name in state["done"] else "rejected"
        assert (status == "ok") == (folder == "done"), (name, status, folder)
        assert (folder == "rejected") == (name.startswith(("truncated", "text", "empty", "bomb")))
    for name in state["rejected"]:
        assert (watch / "rejected" / f"{name}.reason.txt").read_text().strip()
