"""``inspect serve --trust PUBKEY``: only bundles signed in the lab are served."""

import json

import pytest
from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app
from defectkit.core.files import sha256_file
from defectkit.errors import BundleError
from defectkit.exporters.signing import generate_key_pair, sign_bundle
from defectkit.testing.daemon import write_fake_bundle


@pytest.fixture
def keys(tmp_path):
    key, pub = generate_key_pair(tmp_path / "keys" / "lab")
    return key, pub


def rehash_after_tampering(bundle):
    (bundle / "model.bin").write_bytes(b"someone else's weights")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.bin"] = sha256_file(bundle / "model.bin")
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_rehashed_tampered_bundle_is_served_without_trust_and_refused_with_it(
    make_service, fake_bundle, keys
):
    key, pub = keys
    sign_bundle(fake_bundle, key)
    rehash_after_tampering(fake_bundle)
    assert make_service(start=False).bundles.id  # the hashes alone cannot tell
    with pytest.raises(BundleError, match="signature does not match"):
        make_service(start=False, db=str(fake_bundle.parent / "other.db"), trust=(pub,))


def test_signed_bundles_load_and_unsigned_reloads_are_refused(make_service, fake_bundle, keys):
    key, pub = keys
    sign_bundle(fake_bundle, key)
    service = make_service(trust=(pub,))
    assert service.bundles.signed_by
    write_fake_bundle(fake_bundle.parent / "unsigned", tag="u")
    sign_bundle(write_fake_bundle(fake_bundle.parent / "v2", tag="2"), key)
    with TestClient(create_app(service)) as client:
        refused = client.post("/v1/reload", json={"path": "unsigned"})
        assert refused.status_code == 422 and "not signed" in refused.json()["error"]
        ok = client.post("/v1/reload", json={"path": "v2"})
        assert ok.status_code == 200 and ok.json()["signed_by"] == service.bundles.signed_by


def test_an_unsigned_bundle_is_refused_at_start(make_service, keys):
    _, pub = keys
    with pytest.raises(BundleError, match="not signed.*--sign"):
        make_service(trust=(pub,))
