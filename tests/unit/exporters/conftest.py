"""Fixtures for the exporter tests: one small fitted inspector and its exported bundles.

Exporting costs seconds, so the inspector and the fp32 bundles are built once per test
session; tests that damage a bundle work on a copy (:func:`copy_bundle`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

#: Small input keeps PyTorch reference runs fast on a 2-core CI machine; the export
#: path is the same at any size (the benchmark checks parity at the default 224).
INPUT_SIZE = (128, 128)


@pytest.fixture(scope="session")
def fitted():
    """(inspector, support images): efficientnet_lite0 with real weights, 6 synthetic
    shots, each defect shot with a note."""
    from dataclasses import replace

    from defectkit.datasets import make_synthetic
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(128, 128), seed=0)
    samples = [s if s.label == "good" else replace(s, note=f"note on {s.key}") for s in samples]
    inspector = Inspector(InspectorConfig(augmentations=1, bank_size=256, input_size=INPUT_SIZE))
    inspector.fit(samples)
    return inspector, [s.load_image() for s in samples]


@pytest.fixture(scope="session")
def fresh_images() -> list[np.ndarray]:
    """Images the inspector never saw: another seed, other sizes than the input size."""
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
