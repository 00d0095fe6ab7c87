"""Numbers, not files: PyTorch vs ONNX Runtime vs OpenVINO on a fitted inspector.

fp32 must match PyTorch within the self-check's fp32 tolerance on images the export never
saw, at batch 1 and batch 3; fp16 within the fp16 tolerance, with the same classes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.core.results import RawOutputs
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
        inspector.raw(images), bundle.raw(images), "fp32", bundle.thresholds.image
    )
    assert found["score_max_rel"] < 1e-4
    assert found["argmax_agree"] == found["argmax_checked"] == batch
    # The caption evidence is exported too: which labelled shot is nearest.
    assert bundle.output_names[3] == "prototype_similarity"
    assert found["similarity_max_rel"] < 1e-4
    assert found["nearest_shot_agree"] == found["nearest_shot_checked"] == batch
    assert found["verdicts_agree"] == batch


def test_onnx_runtime_and_openvino_agree(onnx_bundle, openvino_bundle, fresh_images):
    a = load_bundle(onnx_bundle).raw(fresh_images)
    b = load_bundle(openvino_bundle).raw(fresh_images)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-4)
    np.testing.assert_array_equal(a.class_logits.argmax(1), b.class_logits.argmax(1))


def test_onnx_bundle_also_runs_on_openvino(onnx_bundle, fitted, fresh_images):
    inspector, _ = fitted
    bundle = load_bundle(onnx_bundle, engine="openvino")
    assert (bundle.engine.name, bundle.engine.precision) == ("openvino", "f32")
    _assert_close(
        inspector.raw(fresh_images), bundle.raw(fresh_images), "fp32", bundle.thresholds.image
    )


def test_batch_results_equal_one_by_one(openvino_bundle, fresh_images):
    bundle = load_bundle(openvino_bundle)
    together = bundle.raw(fresh_images)
    alone = RawOutputs.concat([bundle.raw([im]) for im in fresh_images])
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
        inspector.raw(fresh_images), bundle.raw(fresh_images), "fp16", bundle.thresholds.image
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


def test_export_at_another_input_size(fitted, fresh_images, tmp_path):
    from defectkit.exporters.onnx_export import at_input_size
    from defectkit.inspect.inspector import Inspector

    inspector, support = fitted
    path = export_bundle(
        inspector, tmp_path / "b96", target="onnx", input_size=(96, 96), check_images=support
    )
    bundle = load_bundle(path)
    assert bundle.input_size == (96, 96)
    assert bundle.manifest["fitted_input_size"] == list(inspector.input_size)
    assert inspector.input_size == (128, 128)  # the fitted inspector is left as it was
    resized = Inspector.from_model(at_input_size(inspector, (96, 96)))
    _assert_close(resized.raw(fresh_images), bundle.raw(fresh_images), "fp32", 0.0)
    assert bundle.raw(fresh_images).anomaly_map.shape == (len(fresh_images), 96, 96)
