"""HTTP round trips against a real uvicorn server in a subprocess on a free 127.0.0.1 port.

Runs on the test-double bundle, or on a real exported bundle when
``DEFECTKIT_TEST_BUNDLE`` names one (verdict-specific checks are then skipped).
"""

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

PNG = {"Content-Type": "image/png"}
TOKEN = "integration-token-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("daemon-http")
    bundle = kit.bundle_from_env_or_fake(base / "bundles" / "v1")
    watch = base / "watch"
    watch.mkdir()
    daemon = kit.DaemonProcess(
        bundle, "--watch", str(watch), "--workers", "2", "--batch-size", "4", "--max-upload-mb", "1",
        "--poll-interval", "0.1", "--settle-time", "0.2", "--overlays", str(base / "overlays"), "--station", "line-7",
        "--log-level", "debug",
    ).wait_listening()  # fmt: skip
    with httpx.Client(base_url=daemon.url, timeout=30) as client:
        yield daemon, client, base
    assert daemon.stop() == 0


def test_round_trip(served):
    daemon, client, base = served
    r = client.post(
        "/v1/inspect",
        params={"name": "part-1.png"},
        content=fake.png_bytes(230, size=64),
        headers=PNG,
    )
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert verdict["station"] == "line-7" and verdict["name"] == "part-1.png"
    if daemon.bundle.fake:
        assert (verdict["verdict"], verdict["label"]) == ("defect", "scratch")
    stored = client.get(f"/v1/results/{verdict['id']}").json()
    assert {k: stored[k] for k in ("sha256", "score", "verdict", "label")} == {
        k: verdict[k] for k in ("sha256", "score", "verdict", "label")
    }
    assert (base / "overlays" / verdict["overlay"]).is_file()
    metrics = client.get("/metrics").text
    assert 'defectkit_inspections_total{source="http"' in metrics
    assert client.get("/healthz").json()["status"] == "ok"


def test_bad_inputs_are_refused_and_the_daemon_carries_on(served):
    daemon, client, _ = served
    for kind, data in fake.bad_inputs().items():
        r = client.post(
            "/v1/inspect", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert r.status_code == 422, kind
        assert r.json()["error"]
    assert client.post("/v1/inspect", content=b"\0" * (2 << 20), headers=PNG).status_code == 413
    assert (
        client.post(
            "/v1/inspect", content=fake.png_bytes(1), headers={"Content-Type": "text/csv"}
        ).status_code
        == 415
    )
    r = client.post(
        "/v1/inspect", files={"file": ("../../../etc/cron.d/x", fake.png_bytes(3), "image/png")}
    )
    assert r.status_code == 200 and r.json()["name"] == "x"
    assert client.get("/healthz").status_code == 200


def test_concurrent_clients_each_get_their_own_row(served):
    _, client, _ = served
    images = [fake.png_bytes(40 + i, tag=1000 + i) for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda im: client.post("/v1/inspect", content=im, headers=PNG), images)
        )
    assert [r.status_code for r in responses] == [200] * 24
    assert len({r.json()["id"] for r in responses}) == 24


def test_hot_folder_and_api_share_one_store(served):
    daemon, client, base = served
    (base / "watch" / "cam-0001.png.part").write_bytes(fake.png_bytes(15, tag=77))
    (base / "watch" / "cam-0001.png.part").rename(base / "watch" / "cam-0001.png")
    kit.wait_until(lambda: (base / "watch" / "done" / "cam-0001.png").exists(), 15, message="done/")
    rows = client.get("/v1/results", params={"source": "folder"}).json()["results"]
    assert [r["name"] for r in rows] == ["cam-0001.png"]
    with sqlite3.connect(base / "watch" / ".defectkit" / "results.db") as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM inspections WHERE source='folder'").fetchone()[0]
            == 1
        )


def test_logs_are_json_lines(served):
    daemon, client, _ = served
    client.get("/healthz")
    assert daemon.lines and all(json.loads(line)["event"] for line in daemon.lines)
    assert daemon.has_event("inspected")


def test_token_protects_everything_but_healthz(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1")
    daemon = kit.DaemonProcess(
        bundle, "--token-file", str(token_file), "--db", str(tmp_path / "r.db")
    )
    daemon.wait_listening()
    try:
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/metrics").status_code == 401
            assert c.post("/v1/inspect", content=fake.png_bytes(9), headers=PNG).status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert (
                c.post("/v1/inspect", content=fake.png_bytes(9), headers=PNG | auth).status_code
                == 200
            )
            assert c.get("/openapi.json", headers=auth).status_code == 200
    finally:
        assert daemon.stop() == 0


def test_exposed_host_without_token_is_refused_before_binding(tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1")
    out = kit.run_daemon_to_exit(bundle, "--host", "0.0.0.0", "--db", str(tmp_path / "r.db"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--token-file" in out.stderr
