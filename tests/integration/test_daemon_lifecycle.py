"""Start refusals, graceful SIGTERM, and hot reload (HTTP and SIGHUP) of a real daemon process."""

import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

PNG = {"Content-Type": "image/png"}


def tamper(bundle: Path) -> None:
    """Flip one byte of the bundle's largest file (the model weights)."""
    target = max((p for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"),
                 key=lambda p: p.stat().st_size)  # fmt: skip
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def copy_bundle(bundle: kit.BundleUnderTest, dest: Path) -> kit.BundleUnderTest:
    shutil.copytree(bundle.path, dest)
    return kit.BundleUnderTest(dest, bundle.fake)


def test_a_tampered_bundle_at_start_exits_2_with_one_line(tmp_path):
    bundle = copy_bundle(
        kit.bundle_from_env_or_fake(tmp_path / "src"), tmp_path / "bundles" / "bad"
    )
    tamper(bundle.path)
    out = kit.run_daemon_to_exit(bundle, "--db", str(tmp_path / "r.db"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr


def test_sigterm_finishes_in_flight_work_then_exits_0(tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1", delay_s=0.25)
    watch = tmp_path / "watch"
    watch.mkdir()
    daemon = kit.DaemonProcess(
        bundle, "--watch", str(watch), "--poll-interval", "0.05", "--settle-time", "0.2"
    ).wait_listening()
    for i in range(3):
        (watch / f"f{i}.png").write_bytes(fake.png_bytes(30, tag=i))
    kit.wait_until(
        lambda: len(kit.hot_folder_state(watch)["processing"]) >= 1, 10, message="a claim"
    )
    with httpx.Client(base_url=daemon.url, timeout=60) as client, ThreadPoolExecutor(5) as pool:
        posts = [pool.submit(client.post, "/v1/inspect", content=fake.png_bytes(60, tag=100 + i), headers=PNG)
                 for i in range(5)]  # fmt: skip
        kit.wait_until(
            lambda: int(_gauge(client, "defectkit_queue_depth")) >= 3, 10, message="a queue"
        )
        daemon.signal(signal.SIGTERM)
        codes = [f.result(timeout=60).status_code for f in posts]
    assert daemon.wait(60) == 0
    assert codes == [200] * 5, "requests in flight at SIGTERM are answered"
    state = kit.hot_folder_state(watch)
    assert state["processing"] == [] and sorted(state["done"] + state["inbox"]) == [
        "f0.png",
        "f1.png",
        "f2.png",
    ]
    assert state["done"], "claimed files are finished, not abandoned"
    assert daemon.has_event("stopping") and daemon.events[-1]["event"] == "stopped"
    assert daemon.events[-1]["drained"] is True


def _gauge(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_reload_refuses_a_tampered_bundle_and_never_drops_a_request(tmp_path):
    src = kit.bundle_from_env_or_fake(tmp_path / "src")
    v1 = copy_bundle(src, tmp_path / "bundles" / "v1")
    copy_bundle(src, tmp_path / "bundles" / "v2")
    tamper(copy_bundle(src, tmp_path / "bundles" / "v3").path)
    daemon = kit.DaemonProcess(
        v1, "--db", str(tmp_path / "r.db"), "--workers", "2"
    ).wait_listening()
    stop, codes = threading.Event(), []

    def traffic():
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                codes.append(
                    c.post(
                        "/v1/inspect", content=fake.png_bytes(50, tag=5000 + i), headers=PNG
                    ).status_code
                )
                i += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        with httpx.Client(base_url=daemon.url, timeout=60) as c:
            serving = c.get("/healthz").json()["bundle_id"]
            refused = c.post("/v1/reload", json={"path": "v3"})
            assert refused.status_code == 422 and "still serving" in refused.json()["error"]
            assert c.get("/healthz").json()["bundle_id"] == serving
            assert c.post("/v1/reload", json={"path": "v2"}).status_code == 200
            assert c.post("/v1/reload", json={"path": "/etc"}).status_code == 403
            time.sleep(0.3)
    finally:
        stop.set()
        sender.join(30)
        assert daemon.stop() == 0
    assert codes and set(codes) == {200}, f"requests failed during reloads: {set(codes)}"
    assert daemon.has_event("reload_refused") and daemon.has_event("reloaded")


def test_sighup_reloads_a_switched_current_symlink_even_after_a_path_reload(tmp_path):
    if "DEFECTKIT_TEST_BUNDLE" in __import__("os").environ:
        pytest.skip("needs three bundles with different ids (test double only)")
    releases = tmp_path / "bundles" / "releases"
    ids = {tag: fake.load_fake_bundle(fake.write_fake_bundle(releases / tag, tag=tag)).id
           for tag in ("v1", "v2", "v3")}  # fmt: skip
    current = tmp_path / "bundles" / "current"
    current.symlink_to(releases / "v1")
    daemon = kit.DaemonProcess(
        kit.BundleUnderTest(current), "--db", str(tmp_path / "r.db")
    ).wait_listening()
    try:
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            assert c.get("/healthz").json()["bundle_id"] == ids["v1"]
            # an operator tries a release by path first ...
            assert c.post("/v1/reload", json={"path": "releases/v2"}).json()["bundle_id"] == ids["v2"]
            tmp_link = tmp_path / "bundles" / "next"
            tmp_link.symlink_to(releases / "v3")
            tmp_link.replace(current)  # ... then the deploy switches `current` atomically
            daemon.signal(signal.SIGHUP)
            kit.wait_until(
                lambda: c.get("/healthz").json()["bundle_id"] == ids["v3"], 15,
                message="SIGHUP loads --bundle (the switched link), not the last path",
            )  # fmt: skip
            assert any(e.get("event") == "reloaded" and e.get("bundle_id") == ids["v3"]
                       and e.get("resolved", "").endswith("releases/v3") for e in daemon.events)  # fmt: skip
    finally:
        assert daemon.stop() == 0


def test_a_second_daemon_on_the_same_hot_folder_is_refused(tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1")
    watch = tmp_path / "watch"
    watch.mkdir()
    first = kit.DaemonProcess(bundle, "--watch", str(watch)).wait_listening()
    try:
        out = kit.run_daemon_to_exit(bundle, "--watch", str(watch))
        assert out.returncode == 2 and "another inspect serve" in out.stderr
    finally:
        assert first.stop() == 0
