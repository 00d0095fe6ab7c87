"""Bearer tokens: constant-time check, every endpoint but /healthz protected."""

import pytest
from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app
from defectkit.apps.daemon.auth import bearer_matches, needs_token

TOKEN = "tok-0123456789abcdef"


@pytest.mark.parametrize(
    "header, ok",
    [(f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (f"Bearer  {TOKEN} ", True),
     (None, False), ("", False), (TOKEN, False), (f"Basic {TOKEN}", False),
     (f"Bearer {TOKEN}x", False), (f"Bearer {TOKEN[:-1]}", False), ("Bearer ", False),
     ("Bearer tök-ü", False)],
)  # fmt: skip
def test_bearer_matches(header, ok):
    assert bearer_matches(header, TOKEN) is ok


def test_only_healthz_is_public():
    assert not needs_token("/healthz", TOKEN)
    for path in ("/metrics", "/v1/inspect", "/v1/results", "/docs", "/openapi.json", "/nope"):
        assert needs_token(path, TOKEN)
    assert not needs_token("/metrics", None)


@pytest.fixture
def authed(make_service, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    service = make_service(token_file=token_file)
    with TestClient(create_app(service)) as client:
        yield client


@pytest.mark.parametrize(
    "method, path",
    [("get", "/metrics"), ("get", "/v1/results"), ("get", "/v1/results/1"), ("post", "/v1/inspect"),
     ("post", "/v1/reload"), ("get", "/openapi.json"), ("get", "/docs")],
)  # fmt: skip
def test_endpoints_refuse_without_the_token(authed, method, path):
    response = getattr(authed, method)(path)
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = getattr(authed, method)(path, headers={"Authorization": "Bearer wrong-token-000000"})
    assert wrong.status_code == 401


def test_healthz_is_open_and_the_token_opens_the_rest(authed):
    assert authed.get("/healthz").status_code == 200
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert authed.get("/metrics", headers=headers).status_code == 200
    assert authed.get("/v1/results", headers=headers).json() == {"results": [], "next": None}
