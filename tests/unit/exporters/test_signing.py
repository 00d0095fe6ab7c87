"""Bundle signatures: a re-hashed tampered bundle passes the hashes but not a signature."""

import json

import pytest

from defectkit.core.files import sha256_file
from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import read_manifest, write_manifest
from defectkit.exporters.runtime import load_bundle
from defectkit.exporters.signing import (
    SIGNATURE,
    generate_key_pair,
    load_private_key,
    load_trusted_key,
    sign_bundle,
    verify_bundle,
)


@pytest.fixture
def lab(tmp_path):
    """(private key path, trusted public key) of a freshly generated pair."""
    key, pub = generate_key_pair(tmp_path / "keys" / "lab")
    return key, load_trusted_key(pub)


def rehash_after_tampering(bundle):
    """What an attacker with write access does: change the model, then fix the hashes."""
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    manifest = read_manifest(bundle, verify_files=False)
    manifest["files"]["model.onnx"] = sha256_file(model)
    write_manifest(bundle, manifest)


def test_a_signed_bundle_verifies_and_names_its_key(onnx_bundle, copy_bundle, lab):
    bundle = copy_bundle(onnx_bundle)
    key, trusted = lab
    sign_bundle(bundle, key)
    verified = verify_bundle(bundle, [trusted])
    assert verified.key_id == trusted.key_id and verified.manifest == read_manifest(bundle)
    record = json.loads((bundle / SIGNATURE).read_text())
    assert record["algorithm"] == "ed25519" and record["key_id"] == trusted.key_id


def test_a_rehashed_tampered_bundle_loads_but_fails_its_signature(onnx_bundle, copy_bundle, lab):
    bundle = copy_bundle(onnx_bundle)
    key, trusted = lab
    sign_bundle(bundle, key)
    rehash_after_tampering(bundle)
    load_bundle(bundle)  # the hashes alone cannot tell: the gap the signature closes
    with pytest.raises(BundleError, match="signature does not match"):
        verify_bundle(bundle, [trusted])


def test_unsigned_and_foreign_signed_bundles_are_refused(onnx_bundle, copy_bundle, lab, tmp_path):
    bundle = copy_bundle(onnx_bundle)
    _, trusted = lab
    with pytest.raises(BundleError, match="not signed"):
        verify_bundle(bundle, [trusted])
    other_key, _ = generate_key_pair(tmp_path / "other")
    sign_bundle(bundle, other_key)
    with pytest.raises(BundleError, match="not among the trusted keys"):
        verify_bundle(bundle, [trusted])
    (bundle / SIGNATURE).write_text("{not json")
    with pytest.raises(BundleError, match="unreadable signature"):
        verify_bundle(bundle, [trusted])


def test_key_files_are_checked_with_clear_errors(tmp_path, lab):
    key, trusted = lab
    with pytest.raises(ConfigError, match="--trust .*cannot read"):
        load_trusted_key(tmp_path / "missing.pub")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_trusted_key(key)  # a private key passed as the public one
    (tmp_path / "junk.key").write_text("junk")
    with pytest.raises(ConfigError, match="--sign .*not an unencrypted PEM private key"):
        load_private_key(tmp_path / "junk.key")
    with pytest.raises(ConfigError, match="exists"):
        generate_key_pair(tmp_path / "keys" / "lab")  # never overwrites a key
    assert key.stat().st_mode & 0o077 == 0, "the private key is not readable by others"
