"""Fixtures for the exporter tests: one small fitted inspector and its exported bundles.

Exporting costs seconds, so the inspector and the fp32 bundles are built once per test
session; tests that damage a bundle work on a copy (:func:`copy_bundle`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

#: Small tiles keep PyTorch reference runs fast on a 2-core CI machine; the export path
#: is the same at any size. The fresh images (96 x 160) are wider than one tile, so
#: every parity test also checks cutting and stitching.
TILE_SIZE = (128, 128)


@pytest.fixture(scope="session")
def fitted():
    """(inspector, support images): efficientnet_lite0 with real weights, 6 synthetic
    shots, each defect shot with a note."""
    from dataclasses import replace

    from defectkit.datasets import make_synthetic
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(128, 128), seed=0)
    samples = [s if s.label == "good" else replace(s, note=f"note on {s.key}") for s in samples]
    # Contrast evidence: the graph then has every output (the distances to the defect
    # patches too, which a fit with distance evidence leaves out).
    config = InspectorConfig(augmentations=1, bank_size=256, tile_size=TILE_SIZE, evidence="contrast")
    inspector = Inspector(config)
    inspector.fit(samples)
    return inspector, [s.load_image() for s in samples]


@pytest.fixture(scope="session")
def fresh_images() -> list[np.ndarray]:
    """Images the inspector never saw: another seed, wider than one tile (two tiles each)."""
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 1}, size=(96, 160), seed=7)
    return [s.load_image() for s in samples]


@pytest.fixture(scope="session")
def onnx_bundle(fitted, tmp_path_factory) -> Path:
    from defectkit.exporters.export import export_bundle

    inspector, images = fitted
    return export_bundle(
        inspector, tmp_path_factory.mktemp("onnx") / "bundle", target="onnx", check_images=images
    )


@pytest.fixture(scope="session")
def openvino_bundle(fitted, tmp_path_factory) -> Path:
    from defectkit.exporters.export import export_bundle

    inspector, images = fitted
    return export_bundle(
        inspector, tmp_path_factory.mktemp("ov") / "bundle", target="openvino", check_images=images
    )


@pytest.fixture
def copy_bundle(tmp_path):
    """copy_bundle(src) -> a private copy of a bundle folder to damage."""

    def make(src: Path) -> Path:
        return Path(shutil.copytree(src, tmp_path / src.parent.name / "bundle"))

    return make


class _ResizedImageGraph:
    """The graph of a format-1/2 bundle, as a stand-in: 32 x 32 images in, score = 4 x
    mean brightness, the map is 4 x the gray value, logits (good, dent) = (-score, score)
    and, in version 2, three shots' similarities."""

    @staticmethod
    def module(version: int):
        import torch

        class Graph(torch.nn.Module):
            def forward(self, x):
                gray = x.mean(dim=1)
                score = 4.0 * gray.mean(dim=(1, 2))
                logits = torch.stack([-score, score], dim=1)
                if version == 1:
                    return score, 4.0 * gray, logits
                return score, 4.0 * gray, logits, torch.stack([-score, score, 0.5 * score], dim=1)

        return Graph().eval()


@pytest.fixture
def legacy_bundle(tmp_path):
    """legacy_bundle(version) -> a bundle folder of format 1 or 2, as older defectkit
    versions wrote them (graph on whole images resized to 32 x 32)."""
    import torch

    from defectkit.core.results import Thresholds
    from defectkit.exporters.bundle import FORMAT, hash_files, write_manifest

    def make(version: int) -> Path:
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        names = ["score", "anomaly_map", "class_logits"] + (["prototype_similarity"] if version > 1 else [])
        with torch.no_grad():
            torch.onnx.export(
                _ResizedImageGraph.module(version), (torch.rand(2, 3, 32, 32),), str(folder / "model.onnx"),
                input_names=["image"], output_names=names, dynamo=False,
                dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            )  # fmt: skip
        manifest = {
            "format": FORMAT, "format_version": version, "target": "onnx", "precision": "fp32",
            "input_size": [32, 32], "input_name": "image", "output_names": names,
            "classes": ["good", "dent"], "thresholds": Thresholds(1.0, 1.0, 1).to_dict(),
            "files": hash_files(folder),
        }  # fmt: skip
        if version > 1:
            manifest["shots"] = [
                {"label": "good", "note": None}, {"label": "dent", "note": "a dent from the press"},
                {"label": "dent", "note": None},
            ]  # fmt: skip
            manifest["vocabulary"] = []
        write_manifest(folder, manifest)
        return folder

    return make
