"""Exports: a self-checked bundle folder and a zip, both inside the project."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from defectkit.apps.labelling import exporting
from defectkit.apps.labelling.project import Project
from defectkit.errors import BundleError, NotFittedError


def test_export_before_fit_says_fit_first(project):
    with pytest.raises(NotFittedError, match="click Fit"):
        exporting.export_project(project, "onnx")
    assert exporting.list_exports(project) == []


def test_a_missing_exporter_is_a_message(monkeypatch):
    monkeypatch.setattr(exporting, "_MODULES", ("defectkit.no_such_module",))
    with pytest.raises(BundleError, match="no exporter"):
        exporting.find_exporter()


def test_a_missing_engine_is_a_message(monkeypatch):
    import importlib

    def fake_import(name):
        raise ModuleNotFoundError("No module named 'onnx'", name="onnx")

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(BundleError, match=r"needs onnx.*defectkit\[export\]"):
        exporting.find_exporter()


def test_zip_folder_has_one_top_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    (tmp_path / "b" / "model.onnx").write_bytes(b"\0" * 10)
    exporting.zip_folder(tmp_path / "b", tmp_path / "b.zip", top="proj-onnx-fp32")
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        assert sorted(z.namelist()) == ["proj-onnx-fp32/manifest.json", "proj-onnx-fp32/model.onnx"]


@pytest.mark.slow
def test_export_writes_a_bundle_the_runtime_loads(fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    from defectkit.exporters.runtime import load_bundle

    root = shutil.copytree(fitted[0], tmp_path / "line 3")  # a space in the name, too
    ids = fitted[1]
    project = Project.open(root)
    project.set_threshold(project.fit_record.image_threshold * 1.1)
    archive = exporting.export_project(project, "onnx", "fp32")
    assert archive == root / "exports" / "onnx-fp32.zip"
    assert exporting.list_exports(project) == [archive]
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unzipped")
    bundle = load_bundle(tmp_path / "unzipped" / "line_3-onnx-fp32")
    assert bundle.classes == ("good", "scratch", "spot")
    assert bundle.thresholds.image == pytest.approx(project.thresholds().image)
    assert bundle.manifest["selfcheck"]["passed"]
    image = project.load_image(ids["scratch_002"])
    (from_bundle,) = bundle.inspect([image])
    (from_torch,) = project.load_inspector().inspect([image])
    assert from_bundle.verdict == from_torch.verdict == "defect"
    assert from_bundle.score == pytest.approx(from_torch.score, rel=1e-3)
    assert np.abs(from_bundle.anomaly_map - from_torch.anomaly_map).max() < 1e-2
