"""Minimal bundles in the real manifest format (verified by ``read_manifest``), for tests
of the registry and of manifest settings; they carry no runnable model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectkit.exporters.bundle import FORMAT, FORMAT_VERSION, hash_files, write_manifest


def write_minimal_bundle(folder: str | Path, *, tag: str = "", **extra: Any) -> Path:
    """A folder with a stand-in ``model.onnx`` and a verifying manifest; ``tag`` changes
    the model bytes (and so the id), ``extra`` adds manifest keys (e.g. ``support``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(f"graph{tag}".encode())
    write_manifest(folder, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "target": "onnx",
        "precision": "fp32", "input_size": [32, 32], "input_name": "image",
        "output_names": ["score", "anomaly_map", "class_logits"], "classes": ["good", "scratch"],
        "thresholds": {"image": 0.5, "pixel": 0.5, "min_defect_area": 4},
        "files": hash_files(folder), **extra,
    })  # fmt: skip
    return folder
