"""Exports that must not produce a bundle: unfitted models, bad options, failed self-checks."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from defectkit.errors import BundleError, ConfigError, NotFittedError
from defectkit.exporters import export as export_module
from defectkit.exporters.export import export_bundle
from defectkit.exporters.onnx_export import export_onnx
from defectkit.exporters.openvino_export import export_openvino
from defectkit.exporters.runtime import load_bundle


def test_unfitted_inspector_is_refused(tmp_path):
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    unfitted = Inspector(InspectorConfig(tile_size=(64, 64)))
    for export in (
        lambda: export_bundle(unfitted, tmp_path / "b", target="onnx"),
        lambda: export_onnx(unfitted, tmp_path / "m.onnx"),
        lambda: export_openvino(unfitted, tmp_path / "m.xml"),
    ):
        with pytest.raises(NotFittedError, match="not fitted"):
            export()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options",
    [
        {"target": "tflite"},
        {"target": "onnx", "precision": "int8"},
        {"target": "onnx", "precision": "bf16"},
    ],
)
def test_bad_options_are_refused(fitted, tmp_path, options):
    with pytest.raises(ConfigError):
        export_bundle(fitted[0], tmp_path / "b", **options)
    assert not (tmp_path / "b").exists()


def _graph_of(bundle_dir):
    """A stand-in for the ONNX exporter that writes a graph exported *earlier*."""

    def write(model, folder, *, target, precision):
        shutil.copy(bundle_dir / "model.onnx", folder / "model.onnx")

    return write


def test_a_mismatch_fails_the_export_and_leaves_nothing(fitted, onnx_bundle, tmp_path, monkeypatch):
    inspector, images = fitted
    drifted = copy.deepcopy(inspector)
    with torch.no_grad():
        drifted.model.mean += 0.05  # PyTorch now normalises differently from the exported graph
    monkeypatch.setattr(export_module, "_write_model", _graph_of(onnx_bundle))
    with pytest.raises(
        BundleError, match=r"self-check failed.*score differs by .*No bundle was written"
    ):
        export_bundle(drifted, tmp_path / "b", target="onnx", check_images=images)
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor a temporary folder


def test_a_failed_re_export_keeps_the_previous_bundle(fitted, onnx_bundle, tmp_path, monkeypatch):
    inspector, images = fitted
    target = shutil.copytree(onnx_bundle, tmp_path / "b")
    before = load_bundle(target).id
    drifted = copy.deepcopy(inspector)
    with torch.no_grad():
        drifted.model.std *= 1.1
    monkeypatch.setattr(export_module, "_write_model", _graph_of(onnx_bundle))
    with pytest.raises(BundleError, match="disagrees with PyTorch"):
        export_bundle(drifted, target, target="onnx", check_images=images)
    assert load_bundle(target).id == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_re_export_of_the_same_graph_passes(fitted, onnx_bundle, tmp_path, monkeypatch):
    """The stand-in above is faithful: with the unchanged inspector the check passes."""
    inspector, images = fitted
    monkeypatch.setattr(export_module, "_write_model", _graph_of(onnx_bundle))
    out = export_bundle(inspector, tmp_path / "b", target="onnx", check_images=images)
    assert load_bundle(out).manifest["selfcheck"]["passed"]


def test_export_refuses_to_overwrite_a_foreign_folder(fitted, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "precious.txt").write_text("not ours")
    with pytest.raises(ConfigError, match="not empty"):
        export_bundle(fitted[0], tmp_path / "b", target="onnx")
    assert (tmp_path / "b" / "precious.txt").read_text() == "not ours"
