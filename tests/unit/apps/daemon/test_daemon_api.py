"""The HTTP API in-process (TestClient): verdicts, errors as JSON, back-pressure, reload."""

import shutil
import time

import pytest
from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app, parse_time
from defectkit.apps.daemon.jobs import HTTP, Job
from defectkit.testing.daemon import bad_inputs, png_bytes, write_fake_bundle

PNG = {"Content-Type": "image/png"}


def test_inspect_raw_body(client):
    r = client.post("/v1/inspect?name=part-17.png", content=png_bytes(220), headers=PNG)
    assert r.status_code == 200
    body = r.json()
    assert (body["verdict"], body["label"], body["name"], body["source"]) == (
        "defect",
        "scratch",
        "part-17.png",
        "http",
    )
    for key in (
        "score",
        "probabilities",
        "defects",
        "caption",
        "bundle_id",
        "timings_ms",
        "id",
        "sha256",
    ):
        assert key in body
    assert body["defects"][0]["box"] == [0, 0, 32, 32]


def test_inspect_multipart_with_a_path_trick_name(client, tmp_path):
    files = {"file": ("../../../../tmp/evil.png", png_bytes(10), "image/png")}
    r = client.post("/v1/inspect", files=files)
    assert r.status_code == 200 and r.json()["verdict"] == "good"
    assert r.json()["name"] == "evil.png"
    assert not (tmp_path / "evil.png").exists()


def test_duplicate_upload_returns_the_stored_verdict(client):
    first = client.post("/v1/inspect", content=png_bytes(99), headers=PNG).json()
    second = client.post("/v1/inspect", content=png_bytes(99), headers=PNG).json()
    assert second["duplicate"] and second["id"] == first["id"] and not first["duplicate"]


@pytest.mark.parametrize("kind", sorted(bad_inputs()))
def test_bad_images_are_422_with_a_reason(client, kind):
    r = client.post(
        "/v1/inspect",
        content=bad_inputs()[kind],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 422
    assert set(r.json()) == {"error"} and r.json()["error"]


def test_wrong_content_type_is_415(client):
    r = client.post("/v1/inspect", content=png_bytes(1), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "image/" in r.json()["error"]
    r = client.post("/v1/inspect", data={"a": "b"})  # urlencoded form, curl's default
    assert r.status_code == 415


def test_huge_upload_is_413_with_or_without_content_length(make_service):
    service = make_service(max_upload_mb=0.01)
    with TestClient(create_app(service)) as c:
        big = png_bytes(1, size=1) + b"\0" * 20_000
        assert c.post("/v1/inspect", content=big, headers=PNG).status_code == 413

        def chunks():
            for _ in range(20):
                yield b"\0" * 1024

        r = c.post("/v1/inspect", content=chunks(), headers=PNG)
        assert r.status_code == 413 and "limit" in r.json()["error"]


def test_full_queue_is_503_with_retry_after(make_service):
    service = make_service(start=False, queue_size=2)
    with TestClient(create_app(service)) as c:
        service.queue.offer(Job(HTTP, None, b"a"))
        service.queue.offer(Job(HTTP, None, b"b"))
        r = c.post("/v1/inspect", content=png_bytes(1), headers=PNG)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "full" in r.json()["error"]
        assert 'defectkit_errors_total{kind="queue_full"} 1' in c.get("/metrics").text


def test_stopping_daemon_is_503(client):
    client.service.begin_shutdown()
    r = client.post("/v1/inspect", content=png_bytes(1), headers=PNG)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert client.get("/healthz").status_code == 503


def test_results_filters_and_pagination(client):
    for i in range(5):
        client.post("/v1/inspect", content=png_bytes(230 if i % 2 else 20, tag=i), headers=PNG)
    everything = client.get("/v1/results").json()
    assert len(everything["results"]) == 5 and everything["next"] is None
    defects = client.get("/v1/results", params={"verdict": "defect"}).json()["results"]
    assert [r["verdict"] for r in defects] == ["defect", "defect"]
    assert len(client.get("/v1/results", params={"class": "scratch"}).json()["results"]) == 2
    page = client.get("/v1/results", params={"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"] == page["results"][-1]["id"]
    rest = client.get("/v1/results", params={"limit": 10, "before": page["next"]}).json()["results"]
    assert len(rest) == 3
    now = time.time()
    assert client.get("/v1/results", params={"since": now + 60}).json()["results"] == []
    assert (
        len(client.get("/v1/results", params={"until": "2999-01-01T00:00:00Z"}).json()["results"])
        == 5
    )
    one = client.get(f"/v1/results/{defects[0]['id']}").json()
    assert one == defects[0]


@pytest.mark.parametrize(
    "params",
    [{"verdict": "maybe"}, {"limit": 0}, {"limit": 100000}, {"since": "yesterday"}, {"since": "nan"},
     {"before": -1}],
)  # fmt: skip
def test_bad_result_queries_are_4xx_json(client, params):
    r = client.get("/v1/results", params=params)
    assert r.status_code in (400, 422) and "error" in r.json()


def test_unknown_things_are_json_404s(client):
    assert client.get("/v1/results/12345").json() == {"error": "no inspection with id 12345"}
    assert client.get("/v1/results/..%2F..%2Fetc").status_code in (404, 422)
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    assert client.put("/v1/inspect").status_code == 405


def test_healthz_metrics_openapi(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["bundle_id"] == client.service.bundles.id
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/inspect",
        "/v1/results",
        "/v1/results/{result_id}",
        "/healthz",
        "/metrics",
        "/v1/reload",
    } <= set(paths)
    assert "multipart/form-data" in paths["/v1/inspect"]["post"]["requestBody"]["content"]


def test_parse_time():
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time("1970-01-01T00:01:00") == 60.0
    assert parse_time("60") == 60.0 and parse_time(None) is None


def test_reload_swaps_bundles_and_refuses_tampered_ones(client, fake_bundle):
    old = client.service.bundles.id
    v2 = write_fake_bundle(fake_bundle.parent / "v2", tag="v2")
    r = client.post("/v1/reload", json={"path": "v2"})
    assert r.status_code == 200 and r.json()["previous"] == old
    new = r.json()["bundle_id"]
    assert (
        new != old
        and client.post("/v1/inspect", content=png_bytes(5), headers=PNG).json()["bundle_id"] == new
    )

    tampered = fake_bundle.parent / "v3"
    shutil.copytree(v2, tampered)
    with open(tampered / "model.bin", "r+b") as f:
        f.write(b"\xff")
    r = client.post("/v1/reload", json={"path": str(tampered)})
    assert r.status_code == 422 and "SHA-256" in r.json()["error"] and r.json()["bundle_id"] == new
    assert client.get("/healthz").json()["bundle_id"] == new
    assert client.post("/v1/reload").json()["bundle_id"] == old  # no body: --bundle (v1) again


@pytest.mark.parametrize("path", ["../..", "/etc", "v1/../../outside"])
def test_reload_cannot_read_outside_the_bundle_root(client, path):
    r = client.post("/v1/reload", json={"path": path})
    assert r.status_code == 403 and "under" in r.json()["error"]


def test_reload_rejects_malformed_bodies(client):
    assert client.post("/v1/reload", content=b"{not json").status_code == 400
    assert client.post("/v1/reload", json={"path": 5}).status_code == 400


def test_uploads_beyond_the_bound_are_refused_before_reading(make_service):
    service = make_service(start=False)
    with TestClient(create_app(service)) as c:
        service.uploads.held = service.uploads.capacity  # every byte of the budget in use
        r = c.post("/v1/inspect", content=png_bytes(1), headers=PNG)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        service.uploads.held = 0


@pytest.mark.parametrize("path", ["/v1/results/99999999999999999999999", "/v1/results/0",
                                  "/v1/results?before=99999999999999999999999"])  # fmt: skip
def test_out_of_range_ids_are_json_422s_not_tracebacks(make_service, path):
    with TestClient(create_app(make_service()), raise_server_exceptions=False) as c:
        r = c.get(path)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert "error" in r.json() and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["v1\u0000", "\u0000", "   "])
def test_unusable_reload_paths_are_json_400s(make_service, path):
    with TestClient(create_app(make_service()), raise_server_exceptions=False) as c:
        r = c.post("/v1/reload", json={"path": path})
    assert r.status_code == 400 and "path" in r.json()["error"]


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(make_service):
    service = make_service()

    def broken(query):
        raise RuntimeError("a bug")

    service.store.query = broken
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        r = c.get("/v1/results")
    assert r.status_code == 500 and r.json() == {
        "error": "internal error (RuntimeError); see the daemon's log"
    }
