"""Browsers' cross-site requests are refused on mutating routes; tools are unaffected."""

import pytest

from defectkit.apps.daemon.crossorigin import cross_site_reason
from defectkit.testing.daemon import png_bytes

LOCAL = "127.0.0.1:8080"


def test_a_text_plain_form_post_to_reload_from_a_foreign_page_is_refused(client):
    r = client.post(
        "/v1/reload", content=b'{"path": "v1"}',
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )  # fmt: skip
    assert r.status_code == 403 and "another origin" in r.json()["error"]
    assert client.service.metrics.errors.value(kind="cross_site") == 1
    assert client.service.metrics.reloads.value(result="ok") == 0


def test_a_multipart_upload_from_a_foreign_origin_is_refused_and_stores_nothing(client):
    files = {"file": ("x.png", png_bytes(10), "image/png")}
    r = client.post("/v1/inspect", files=files, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert client.service.store.count() == 0


def test_tools_and_the_daemons_own_pages_are_allowed(client):
    files = {"file": ("x.png", png_bytes(10), "image/png")}
    assert client.post("/v1/inspect", files=files).status_code == 200  # curl: no Origin
    same = {"Origin": f"http://{LOCAL}", "Host": LOCAL}  # e.g. /docs "try it out"
    assert client.post("/v1/reload", headers=same).status_code == 200
    foreign_get = client.get("/v1/results", headers={"Origin": "http://evil.example"})
    assert foreign_get.status_code == 200, "reads are not refused (and get no CORS headers)"


@pytest.mark.parametrize(
    "headers, refused",
    [({}, False),
     ({"origin": f"http://{LOCAL}", "host": LOCAL}, False),
     ({"origin": "http://localhost:8080", "host": "localhost:8080"}, False),
     ({"origin": "http://[::1]:8080", "host": "[::1]:8080"}, False),
     ({"origin": "http://localhost:3000", "host": "localhost:8080"}, True),  # other port
     ({"origin": "http://evil.example:8080", "host": "evil.example:8080"}, True),  # rebinding
     ({"origin": "null", "host": LOCAL}, True),
     ({"sec-fetch-site": "cross-site", "host": LOCAL}, True),
     ({"sec-fetch-site": "same-origin", "origin": f"http://{LOCAL}", "host": LOCAL}, False)],
)  # fmt: skip
def test_cross_site_rules(headers, refused):
    assert (cross_site_reason("POST", headers, loopback_only=True) is not None) is refused
    assert cross_site_reason("GET", headers, loopback_only=True) is None


def test_an_exposed_daemon_accepts_its_own_host_name_as_origin():
    same = {"origin": "http://line-7.factory:8080", "host": "line-7.factory:8080"}
    assert cross_site_reason("POST", same, loopback_only=False) is None
    assert cross_site_reason("POST", same, loopback_only=True) is not None
