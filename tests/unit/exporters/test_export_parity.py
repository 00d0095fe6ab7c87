"""Numbers, not files: PyTorch vs ONNX Runtime vs OpenVINO on a fitted inspector.

fp32 must match PyTorch within the self-check's fp32 tolerance on images the export never
saw, at batch 1 and batch 3, and on whole images of many tiles; fp16 within the fp16
tolerance, with the same classes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.exporters.export import export_bundle
from defectkit.exporters.runtime import load_bundle
from defectkit.exporters.selfcheck import TOLERANCES, compare


def _model_bytes(bundle) -> int:
    return sum(f.stat().st_size for f in bundle.iterdir() if f.name != "manifest.json")


def _assert_close(reference, exported, precision, threshold):
    found = compare(reference, exported, TOLERANCES[precision], threshold=threshold)
    assert not found["failures"], found
    return found


@pytest.mark.parametrize("which", ["onnx_bundle", "openvino_bundle"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fp32_matches_pytorch(request, fitted, fresh_images, which, batch):
    inspector, _ = fitted
    bundle = load_bundle(request.getfixturevalue(which))
    images = fresh_images[:batch]
    found = _assert_close(
        inspector.raw_each(images), bundle.raw_each(images), "fp32", bundle.thresholds.image
    )
    assert found["score_max_rel"] < 1e-4
    # Every clear-cut image's class agrees (top two probabilities more than twice the
    # tolerance apart). The second fresh image is a good part whose most unusual region
    # pools about as close to the good shots as to a spot (0.47 / 0.45): not clear-cut.
    assert found["argmax_agree"] == found["argmax_checked"] >= min(batch, 2)
    # The graph's outputs are per-tile grids; the head after it is the same numpy code.
    assert bundle.output_names == ("features", "distance", "defect_distance")
    # The caption evidence comes through too: which labelled shot is nearest.
    assert found["similarity_max_rel"] < 1e-4
    assert found["nearest_shot_agree"] == found["nearest_shot_checked"] >= min(batch, 2)  # (the same image)
    assert found["verdicts_agree"] == batch


def test_onnx_runtime_and_openvino_agree(onnx_bundle, openvino_bundle, fresh_images):
    a = load_bundle(onnx_bundle).raw(fresh_images)  # one size: batched outputs
    b = load_bundle(openvino_bundle).raw(fresh_images)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-4)
    np.testing.assert_array_equal(a.class_logits.argmax(1), b.class_logits.argmax(1))


def test_onnx_bundle_also_runs_on_openvino(onnx_bundle, fitted, fresh_images):
    inspector, _ = fitted
    bundle = load_bundle(onnx_bundle, engine="openvino")
    assert (bundle.engine.name, bundle.engine.precision) == ("openvino", "f32")
    _assert_close(
        inspector.raw_each(fresh_images), bundle.raw_each(fresh_images), "fp32", bundle.thresholds.image
    )


def test_batch_results_equal_one_by_one(openvino_bundle, fresh_images):
    bundle = load_bundle(openvino_bundle)
    together = bundle.raw_each(fresh_images)
    alone = [bundle.raw_each([im])[0] for im in fresh_images]
    _assert_close(together, alone, "fp32", bundle.thresholds.image)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_fp16_within_stated_tolerance(request, fitted, fresh_images, tmp_path, target):
    inspector, support = fitted
    path = export_bundle(
        inspector, tmp_path / "b16", target=target, precision="fp16", check_images=support
    )
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["selfcheck"]["passed"]
    bundle = load_bundle(path)
    found = _assert_close(
        inspector.raw_each(fresh_images), bundle.raw_each(fresh_images), "fp16", bundle.thresholds.image
    )
    # fp16 is really fp16 (weights smaller, numbers not bit-equal to fp32) ...
    fp32 = request.getfixturevalue(f"{target}_bundle")
    assert _model_bytes(path) < 0.6 * _model_bytes(fp32)
    assert found["score_max_abs"] > 0
    # ... and what the engine computes in is recorded, never a silent bf16.
    assert manifest["selfcheck"]["inference_precision"] in ("f16", "f32")
    print(
        f"{target} fp16 vs PyTorch: {json.dumps({k: found[k] for k in ('score_max_rel', 'map_max_rel', 'logit_max_rel')})}"
    )


@pytest.fixture(scope="module")
def large_images() -> list[np.ndarray]:
    """Whole images of many 128 px tiles, non-square, one with each defect kind."""
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=1, defects=("scratch", "spot"), size=(200, 330), seed=11)
    return [s.load_image() for s in samples]


@pytest.mark.parametrize("which", ["onnx_bundle", "openvino_bundle"])
def test_whole_tiled_images_match_pytorch(request, fitted, large_images, which):
    from defectkit.core.tiling import plan_tiles

    inspector, _ = fitted
    bundle = load_bundle(request.getfixturevalue(which))
    assert plan_tiles(bundle.predictor.info.tiles, large_images[0].shape[:2]).n_tiles >= 6
    ours, theirs = bundle.inspect(large_images), inspector.inspect(large_images)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.verdict, a.label) == (b.verdict, b.label)
        assert a.score == pytest.approx(b.score, rel=1e-4, abs=2e-4)
        assert a.anomaly_map.shape == b.anomaly_map.shape == (200, 330)  # original pixels
        scale = max(float(np.abs(b.anomaly_map).max()), 1e-6)
        assert np.abs(a.anomaly_map - b.anomaly_map).max() <= 2e-3 + 1e-3 * scale
    assert any(r.defects and r.defects[0].box is not None for r in theirs), "a region is compared"
