"""Fit / inspect / save / load on synthetic defects with exact masks (embedded backbone)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from defectkit.errors import ModelFormatError, NotFittedError
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector
from defectkit.inspect.saved import (
    CONFIG_FILE,
    FORMAT_VERSION,
    TENSORS_FILE,
    load_inspector,
    save_inspector,
)


def test_known_defects_are_found_and_localised(fitted, synthetic):
    inspector, report = fitted
    _, held_out = synthetic
    results = inspector.inspect([s.load_image() for s in held_out])
    defects = [(s, r) for s, r in zip(held_out, results, strict=True) if s.label != "good"]
    goods = [r for s, r in zip(held_out, results, strict=True) if s.label == "good"]
    flagged = [(s, r) for s, r in defects if r.verdict == "defect"]
    assert len(flagged) >= 0.8 * len(defects), [r.score for _, r in defects]
    assert sum(r.verdict == "good" for r in goods) >= 0.8 * len(goods), [r.score for r in goods]
    # localised: the predicted mask overlaps the true defect for every flagged image
    for sample, result in flagged:
        true = sample.load_mask()
        assert (true & result.mask).any(), sample.name
        x0, y0, x1, y1 = result.defects[0].box
        cx, cy = sample.meta["centre"]
        assert x0 - 8 <= cx <= x1 + 8 and y0 - 8 <= cy <= y1 + 8
    assert report.good_scores and max(report.good_scores) == pytest.approx(1.0)
    json.dumps([r.to_dict() for r in results])


def test_threshold_moves_without_refit(fitted, synthetic):
    inspector, report = fitted
    image = synthetic[1][0].load_image()
    before = inspector.thresholds
    try:
        inspector.set_threshold(image=1e9)
        assert inspector.inspect([image])[0].verdict == "good"
        inspector.set_threshold(image=0.0)
        assert inspector.inspect([image])[0].verdict == "defect"
    finally:
        inspector.thresholds = before


def test_save_load_round_trip_is_identical(fitted, synthetic, tmp_path):
    inspector, _ = fitted
    images = [s.load_image() for s in synthetic[1][:4]]
    save_inspector(inspector, tmp_path / "model")
    loaded = load_inspector(tmp_path / "model")
    ours, theirs = inspector.raw(images), loaded.raw(images)
    assert ours.names == theirs.names
    # Banks, standardisation and scoring are stored exactly ...
    np.testing.assert_array_equal(ours.score, theirs.score)
    np.testing.assert_array_equal(ours.anomaly_map, theirs.anomaly_map)
    # ... and so is the head (JSON floats round-trip exactly).
    np.testing.assert_array_equal(ours.class_logits, theirs.class_logits)
    np.testing.assert_array_equal(ours.prototype_similarity, theirs.prototype_similarity)
    assert loaded.classes == inspector.classes and loaded.thresholds == inspector.thresholds
    assert not any(p.name.endswith((".pt", ".pkl", ".pth")) for p in (tmp_path / "model").iterdir())


def test_saved_model_refuses_tampering_and_other_versions(fitted, tmp_path):
    inspector, _ = fitted
    folder = save_inspector(inspector, tmp_path / "m")
    data = bytearray((folder / TENSORS_FILE).read_bytes())
    data[-1] ^= 1
    (folder / TENSORS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="checksum"):
        load_inspector(folder)
    folder = save_inspector(inspector, tmp_path / "m2")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["format_version"] = 99
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="format version 99"):
        load_inspector(folder)
    (folder / TENSORS_FILE).unlink()
    meta["format_version"] = FORMAT_VERSION
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="missing"):
        load_inspector(folder)


def test_unfitted_inspector_is_refused(tmp_path):
    inspector = Inspector(InspectorConfig())
    with pytest.raises(NotFittedError):
        inspector.inspect([np.zeros((64, 64, 3), np.uint8)])
    with pytest.raises(NotFittedError):
        save_inspector(inspector, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_forward_runs_tiles_in_batches(fitted):
    inspector, _ = fitted
    x = torch.rand(3, 3, *inspector.input_size)
    h, w = inspector.model.tiles.grid
    with torch.inference_mode():
        out = inspector.model(x)
        single = inspector.model(x[:1])
    # Distances to the defect patches only where the evidence reads them (contrast).
    contrast = inspector.model.head.scoring.evidence == "contrast"
    assert out.names == inspector.output_names == ("features", "distance") + (("defect_distance",) if contrast else ())
    assert out.embed is None  # no text tower, no text-space embeddings
    assert out.features.shape == (3, inspector.model.features.dim, h, w)
    assert out.distance.shape == (3, h, w)
    assert out.defect_distance is None if not contrast else out.defect_distance.shape == (3, h, w)
    assert float(out.distance.min()) >= 0
    torch.testing.assert_close(single.distance, out.distance[:1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single.features, out.features[:1], rtol=1e-4, atol=1e-4)
