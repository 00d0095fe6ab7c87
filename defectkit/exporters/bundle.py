"""The bundle format: model files + ``manifest.json``, hashed and verified. Torch-free.

A bundle is one folder a integrator copies to the factory PC::

    model.onnx                      (target "onnx")
    model.xml + model.bin           (target "openvino")
    manifest.json

The manifest says how to feed the model (input size, normalisation, output names),
how to read its outputs (classes, thresholds, and for captions the labelled shots with
their notes and the vocabulary), where it came from (backbone and weight
hash, support-set summary, package versions, creation time), what the export's
self-check measured, and the SHA-256 of every model file. It also carries
``manifest_sha256``, the hash of its own canonical JSON, so a hand edit (a changed class
name, a deleted tolerance) is caught too. Thresholds live here, outside the graph, so a
line can move them without re-exporting: :func:`set_thresholds` rewrites the manifest
and its hash together. JSON only, no pickles: loading a bundle never runs its code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from defectkit import __version__
from defectkit.core.files import sha256_file, write_atomic
from defectkit.core.results import Thresholds
from defectkit.errors import BundleError, ConfigError

FORMAT = "defectkit-bundle"
#: 2 added the caption outputs (``prototype_similarity``, ``vocab_scores``) and the
#: manifest's ``shots``; version 1 bundles (three outputs) still load, without notes.
#: 3: the graph runs fixed-size tiles and returns per-patch ``features``, ``distance``,
#: ``defect_distance`` (and ``embed``); the manifest's ``tiles`` say how images are cut
#: and its ``head`` holds the numpy head after the graph, and ``mode`` says whether the
#: model gives verdicts. Versions 1 and 2 still load and run as before (resized images).
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
TARGETS = ("openvino", "onnx")
PRECISIONS = ("fp32", "fp16")
#: The model file each target's engine opens (other files are found by the engine).
ENTRY_FILES = {"onnx": "model.onnx", "openvino": "model.xml"}
#: Keys a manifest must have for the runtime to use it.
REQUIRED = (
    "target",
    "precision",
    "input_size",
    "input_name",
    "output_names",
    "classes",
    "thresholds",
    "files",
)


def hash_files(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` of every file in ``folder`` except the manifest."""
    return {
        p.name: sha256_file(p)
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON (sorted keys), without ``manifest_sha256``.

    Canonical, so re-indenting the file does not change a bundle's identity.
    """
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``manifest_sha256`` and write ``manifest.json`` atomically (temp file + rename)."""
    manifest = dict(manifest)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    write_atomic(Path(folder) / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _parse(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such bundle folder (create one with `inspect export`)")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder}: no {MANIFEST}; is this an exported bundle folder?")
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc}); copy the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not a defectkit bundle manifest (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise BundleError(
            f"{folder}: bundle format version {version!r} is not supported by defectkit "
            f"{__version__} (reads versions {readable}); re-export the bundle with this "
            "version, or install the defectkit version that wrote it"
        )
    return manifest


def _check_files(folder: Path, files: Any) -> None:
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{folder}: {MANIFEST} lists no model files")
    for name, expected in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise BundleError(f"{folder}: {MANIFEST} names a file outside the bundle: {name!r}")
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{folder}: {name} is missing; copy the whole bundle folder")
        if sha256_file(file) != expected:
            raise BundleError(
                f"{folder}: {name} does not match its SHA-256 in the manifest; the file was "
                "changed or truncated (copy the bundle again)"
            )


def read_manifest(folder: str | Path, *, verify_files: bool = True) -> dict[str, Any]:
    """Parse and verify a bundle's manifest: JSON, format, version, own hash, file hashes.

    Raises:
        BundleError: anything missing, unknown, edited or tampered with, saying which.
    """
    folder = Path(folder)
    manifest = _parse(folder)
    if manifest.get("manifest_sha256") != manifest_digest(manifest):
        raise BundleError(
            f"{folder}: {MANIFEST} was changed after export (its checksum does not match); "
            "move thresholds with `inspect threshold BUNDLE --image X`, never by hand, "
            "or re-export"
        )
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{folder}: {MANIFEST} lacks {', '.join(missing)}; re-export the bundle")
    if manifest["target"] not in TARGETS or manifest["precision"] not in PRECISIONS:
        raise BundleError(
            f"{folder}: unknown target/precision {manifest['target']}/{manifest['precision']}"
        )
    if ENTRY_FILES[manifest["target"]] not in manifest["files"]:
        raise BundleError(f"{folder}: {MANIFEST} does not list {ENTRY_FILES[manifest['target']]}")
    try:
        Thresholds.from_dict(manifest["thresholds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{folder}: thresholds in {MANIFEST} are unreadable ({exc})") from None
    if verify_files:
        _check_files(folder, manifest["files"])
    return manifest


def set_thresholds(
    folder: str | Path,
    *,
    image: float | None = None,
    pixel: float | None = None,
    min_defect_area: int | None = None,
) -> Thresholds:
    """Move a bundle's thresholds on disk (no re-export) and re-stamp the manifest hash.

    The model files are untouched, so their hashes stay; the bundle's id changes (it is
    the manifest's hash), which is how a daemon's results tell the two settings apart.
    A lowered image threshold takes the pixel threshold with it unless ``pixel`` is
    given (:meth:`~defectkit.core.results.Thresholds.moved`, the one threshold rule).

    Returns:
        The new thresholds.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    old = Thresholds.from_dict(manifest["thresholds"])
    new = old.moved(image=image, pixel=pixel, min_defect_area=min_defect_area)
    if new.min_defect_area < 0:
        raise ConfigError(f"min_defect_area must be >= 0, got {new.min_defect_area}")
    manifest["thresholds"] = new.to_dict()
    write_manifest(folder, manifest)
    return new
