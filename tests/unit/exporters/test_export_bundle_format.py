"""The bundle on disk: manifest contents, hashes, tampering, thresholds outside the graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.core.files import sha256_file
from defectkit.errors import BundleError
from defectkit.exporters.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    manifest_digest,
    read_manifest,
    set_thresholds,
    write_manifest,
)
from defectkit.exporters.runtime import load_bundle


def _manifest(bundle):
    return json.loads((bundle / MANIFEST).read_text())


def test_manifest_describes_model_and_provenance(openvino_bundle, fitted):
    inspector, _ = fitted
    m = _manifest(openvino_bundle)
    assert m["format"] == "defectkit-bundle" and m["format_version"] == FORMAT_VERSION
    assert (m["target"], m["precision"]) == ("openvino", "fp32")
    # The graph runs tiles and returns patch grids; the numpy head after it travels as JSON.
    assert m["input_size"] == list(inspector.input_size) == m["tiles"]["size"]
    assert m["tiles"] == inspector.model.tiles.to_dict()
    assert m["output_names"] == ["features", "distance", "defect_distance"]
    assert m["head"] == json.loads(json.dumps(inspector.model.head.to_dict()))
    assert m["mode"] == "inspect"
    # Caption context: shots in prototype order (good first), no vocabulary without a
    # text tower.
    assert [s["label"] for s in m["shots"]] == ["good"] * 2 + ["scratch"] * 2 + ["spot"] * 2
    assert m["vocabulary"] == []
    assert m["classes"] == ["good", "scratch", "spot"]
    assert m["thresholds"] == inspector.thresholds.to_dict()
    assert m["preprocessing"]["mean"] == pytest.approx(inspector.model.mean.flatten().tolist())
    assert m["preprocessing"]["normalisation"] == "in_graph"
    assert m["backbone"] == {
        "name": "efficientnet_lite0",
        "weights_id": inspector.backbone.weights_id,
    }
    assert m["support"]["shots_per_class"] == {"good": 2, "scratch": 2, "spot": 2}
    assert {"torch", "openvino", "onnx", "defectkit"} <= set(m["versions"])
    assert m["created"].endswith("+00:00")
    # every model file is hashed, and nothing else lies in the folder
    files = sorted(p.name for p in openvino_bundle.iterdir())
    assert files == ["manifest.json", "model.bin", "model.xml"]
    assert m["files"] == {n: sha256_file(openvino_bundle / n) for n in ("model.bin", "model.xml")}
    check = m["selfcheck"]
    assert check["passed"] and check["images"] >= 6 and 1 in check["batch_sizes"]
    assert check["inference_precision"] == "f32"
    assert check["score_max_rel"] <= 1e-4 and check["argmax_agree"] == check["argmax_checked"]


def test_no_pickles_in_a_bundle(onnx_bundle, openvino_bundle):
    for bundle in (onnx_bundle, openvino_bundle):
        for f in bundle.iterdir():
            assert not f.read_bytes()[:2] == b"\x80\x04", f"{f} looks like a pickle"
            assert f.suffix in (".json", ".onnx", ".xml", ".bin")


def test_missing_file_is_refused(onnx_bundle, copy_bundle):
    b = copy_bundle(onnx_bundle)
    (b / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(b)


@pytest.mark.parametrize("name", ["model.bin", "model.xml"])
def test_one_changed_byte_is_refused(openvino_bundle, copy_bundle, name):
    b = copy_bundle(openvino_bundle)
    data = bytearray((b / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (b / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name} does not match its SHA-256"):
        load_bundle(b)


def test_truncated_file_is_refused(openvino_bundle, copy_bundle):
    b = copy_bundle(openvino_bundle)
    data = (b / "model.bin").read_bytes()
    (b / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(b)


def test_unknown_format_version_is_refused_even_when_consistent(onnx_bundle, copy_bundle):
    b = copy_bundle(onnx_bundle)
    m = _manifest(b)
    m["format_version"] = FORMAT_VERSION + 1
    write_manifest(b, m)  # a consistent manifest from a future defectkit
    with pytest.raises(BundleError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_bundle(b)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"format": "something-else"}'])
def test_unparsable_or_foreign_manifest_is_refused(onnx_bundle, copy_bundle, text):
    b = copy_bundle(onnx_bundle)
    (b / MANIFEST).write_text(text)
    with pytest.raises(BundleError, match="not valid JSON|not a defectkit bundle"):
        load_bundle(b)


def test_missing_manifest_or_folder_is_refused(onnx_bundle, copy_bundle, tmp_path):
    b = copy_bundle(onnx_bundle)
    (b / MANIFEST).unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(b)
    with pytest.raises(BundleError, match="no such bundle folder"):
        load_bundle(tmp_path / "nowhere")


def test_hand_edited_manifest_is_refused(onnx_bundle, copy_bundle):
    b = copy_bundle(onnx_bundle)
    m = _manifest(b)
    m["classes"] = ["good", "spot", "scratch"]  # swapped names: would mislabel every defect
    (b / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="changed after export"):
        load_bundle(b)


def test_file_names_outside_the_bundle_are_refused(onnx_bundle, copy_bundle):
    b = copy_bundle(onnx_bundle)
    m = _manifest(b)
    m["files"]["../elsewhere.onnx"] = "0" * 64
    write_manifest(b, m)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(b)


def test_reindenting_the_manifest_keeps_it_valid(onnx_bundle, copy_bundle):
    b = copy_bundle(onnx_bundle)
    before = load_bundle(b).id
    (b / MANIFEST).write_text(json.dumps(_manifest(b), indent=7))
    assert load_bundle(b).id == before


def test_set_thresholds_rewrites_manifest_consistently(onnx_bundle, copy_bundle, fresh_images):
    b = copy_bundle(onnx_bundle)
    old = load_bundle(b)
    hashes = _manifest(b)["files"]
    new = set_thresholds(b, image=-1.0)  # every image is now defective
    # The one threshold rule: a lowered image threshold takes the pixel threshold along.
    assert new.image == -1.0 and new.pixel == min(old.thresholds.pixel, -1.0)
    assert new.min_defect_area == old.thresholds.min_defect_area
    assert _manifest(b)["files"] == hashes  # model files untouched
    m = read_manifest(b)
    assert m["manifest_sha256"] == manifest_digest(m)
    reloaded = load_bundle(b)
    assert reloaded.id != old.id  # results can tell the two settings apart
    assert reloaded.thresholds.image == -1.0
    assert {r.verdict for r in reloaded.inspect(fresh_images)} == {"defect"}
    np.testing.assert_array_equal(reloaded.raw(fresh_images)[0], old.raw(fresh_images)[0])


@pytest.mark.parametrize("version", [1, 2])
def test_a_format_1_or_2_bundle_still_runs_on_resized_images(legacy_bundle, version):
    """Bundles of the resized-image graph (score, anomaly map, logits from the graph) keep
    running: version 1 without caption outputs, version 2 with the shots' similarities."""
    bundle = load_bundle(legacy_bundle(version))
    assert bundle.input_size == (32, 32) and bundle.mode == "inspect"
    dark, bright = np.full((40, 70, 3), 10, np.uint8), np.full((90, 50, 3), 240, np.uint8)
    results = bundle.inspect([dark, bright], ["dark.png", "bright.png"])
    assert [r.verdict for r in results] == ["good", "defect"]
    assert [r.label for r in results] == ["good", "dent"]
    assert results[0].anomaly_map.shape == (40, 70) and results[1].anomaly_map.shape == (90, 50)
    assert results[1].score == pytest.approx(4 * 240 / 255, rel=1e-4)
    raw = bundle.raw([dark, dark])
    assert raw.anomaly_map.shape == (2, 32, 32)  # the graph's own resolution
    shots = 0 if version == 1 else 3
    assert raw.prototype_similarity.shape == (2, shots)
    assert len(bundle.caption_context.shot_labels) == shots
    if version == 1:  # no shots, no notes
        assert all(d.note is None for d in results[1].defects)
    else:
        assert "a dent from the press" in results[1].caption
