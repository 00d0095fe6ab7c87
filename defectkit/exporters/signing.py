"""Bundle signatures: Ed25519 over ``manifest.json``, so a site can require its own lab's bundles.

A manifest lists the SHA-256 of every model file and of itself, which catches a
damaged or hand-edited bundle but not a tampered one whose hashes were recomputed.
A signature made with the lab's private key closes that: the manifest's exact bytes
are signed, the manifest pins every other file, and a daemon started with
``--trust lab.pub`` loads only bundles whose signature verifies against one of its keys.

Keys are PEM files (``openssl genpkey -algorithm ed25519 -out lab.key`` and
``openssl pkey -in lab.key -pubout -out lab.pub``, or
``python -m defectkit.exporters.signing keygen lab``). The signature lives beside the
manifest in ``manifest.sig`` (JSON: algorithm, key id, base64 signature). Torch-free:
the daemon verifies with :mod:`cryptography` alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectkit.core.files import write_atomic
from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import MANIFEST

SIGNATURE = "manifest.sig"
FORMAT = "defectkit-signature"
ALGORITHM = "ed25519"


@dataclass(frozen=True)
class TrustedKey:
    """A public key a daemon accepts bundles from; ``key_id`` names it in messages."""

    key_id: str
    source: Path
    key: Any  # cryptography's Ed25519PublicKey


@dataclass(frozen=True)
class Verified:
    """A bundle whose signature verified: the signed manifest bytes and who signed them."""

    manifest_bytes: bytes
    key_id: str

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError(
            "bundle signatures need the cryptography package: pip install cryptography "
            "(it comes with defectkit[serve])"
        ) from None
    return serialization, ed25519


def key_id(public_key: Any) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _load_key(path: str | Path, *, private: bool) -> Any:
    """An Ed25519 key from a PEM file, or :class:`ConfigError` naming the flag and file."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    flag, kind = (
        ("--sign", "an unencrypted PEM private key") if private else ("--trust", "a PEM public key")
    )
    try:
        data = path.read_bytes()
        if private:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot read the key ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{flag} {path}: not {kind} ({exc}); make a pair with "
            "`python -m defectkit.exporters.signing keygen lab`"
        ) from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ConfigError(f"{flag} {path}: an Ed25519 key is needed, not {type(key).__name__}")
    return key


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from a PEM file (unencrypted), or :class:`ConfigError`."""
    return _load_key(path, private=True)


def load_trusted_key(path: str | Path) -> TrustedKey:
    """An Ed25519 public key from a PEM file, or :class:`ConfigError` naming the file."""
    key = _load_key(path, private=False)
    return TrustedKey(key_id(key), Path(path), key)


def sign_bundle(folder: str | Path, private_key: Any) -> Path:
    """Sign ``folder/manifest.json`` with ``private_key`` (a PEM file's path, or a key
    from :func:`load_private_key`); returns the ``manifest.sig`` written.

    Sign after the last change to the manifest (export, ``inspect threshold``): any
    later edit, even of one threshold, makes the signature fail.
    """
    folder = Path(folder)
    key = load_private_key(private_key) if isinstance(private_key, (str, Path)) else private_key
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise BundleError(f"{folder}: no {MANIFEST} to sign; is this an exported bundle folder?")
    signature = key.sign(manifest.read_bytes())
    record = {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key_id(key.public_key()),
        "signed_file": MANIFEST,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    target = folder / SIGNATURE
    write_atomic(target, (json.dumps(record, indent=1) + "\n").encode())
    return target


def verify_bundle(folder: str | Path, keys: list[TrustedKey]) -> Verified:
    """Check ``folder``'s signature against ``keys``; the manifest bytes it covers.

    Only the manifest is verified here; the bundle loader then checks every file
    against the hashes in it. Compare the loaded manifest with
    :attr:`Verified.manifest` so a manifest swapped in between is caught too.

    Raises:
        BundleError: no signature, an unreadable one, an unknown key or a mismatch.
    """
    folder = Path(folder)
    sig_path = folder / SIGNATURE
    if not sig_path.is_file():
        raise BundleError(
            f"{folder}: the bundle is not signed ({SIGNATURE} missing) and this daemon only "
            "serves signed bundles (--trust); sign it with `inspect export --sign KEY`"
        )
    try:
        record = json.loads(sig_path.read_bytes())
        signature = base64.b64decode(record["signature"], validate=True)
        signer = str(record.get("key_id", "?"))
        if record.get("algorithm") != ALGORITHM:
            raise ValueError(f"algorithm {record.get('algorithm')!r} is not {ALGORITHM}")
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BundleError(
            f"{sig_path}: unreadable signature ({exc}); sign the bundle again"
        ) from None
    trusted = {k.key_id: k for k in keys}
    if signer not in trusted:
        raise BundleError(
            f"{folder}: signed by key {signer}, which is not among the trusted keys "
            f"({', '.join(sorted(trusted)) or 'none'})"
        )
    manifest = (folder / MANIFEST).read_bytes() if (folder / MANIFEST).is_file() else b""
    try:
        trusted[signer].key.verify(signature, manifest)
    except Exception:  # noqa: BLE001 - cryptography's InvalidSignature, or a bad length
        raise BundleError(
            f"{folder}: the signature does not match {MANIFEST} (changed after signing?); "
            "refused. Re-export or re-sign it in the lab"
        ) from None
    return Verified(manifest, signer)


def generate_key_pair(prefix: str | Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (private, mode 600) and ``PREFIX.pub`` (public), PEM."""
    serialization, ed25519 = _crypto()
    prefix = Path(prefix)
    private = ed25519.Ed25519PrivateKey.generate()
    key_path, pub_path = (
        prefix.with_name(prefix.name + ".key"),
        prefix.with_name(prefix.name + ".pub"),
    )
    for path in (key_path, pub_path):
        if path.exists():
            raise ConfigError(f"{path} exists; pick another name (keys are never overwritten)")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key; 0o600 from the first byte, not chmod-ed afterwards.
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


if __name__ == "__main__":  # python -m defectkit.exporters.signing keygen PREFIX
    if len(sys.argv) != 3 or sys.argv[1] != "keygen":
        print("usage: python -m defectkit.exporters.signing keygen PREFIX", file=sys.stderr)
        sys.exit(2)
    try:
        written = generate_key_pair(sys.argv[2])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {written[0]} (keep it in the lab) and {written[1]} (give it to the daemons)")
