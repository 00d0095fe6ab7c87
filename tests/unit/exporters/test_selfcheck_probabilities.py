"""The self-check bounds class probabilities, not logits: logits are squared descriptor
distances over a temperature of 0.05, where float noise is amplified x20."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.core.results import RawOutputs
from defectkit.errors import BundleError
from defectkit.exporters.bundle import read_manifest, write_manifest
from defectkit.exporters.runtime import load_bundle
from defectkit.exporters.selfcheck import TOLERANCES, compare, run_selfcheck

FP32 = TOLERANCES["fp32"]


def raw(logits, similarity=None) -> RawOutputs:
    logits = np.asarray(logits, np.float32)
    similarity = logits if similarity is None else np.asarray(similarity, np.float32)
    return RawOutputs(np.float32(0.5), np.zeros((4, 4), np.float32), logits, similarity)


def test_amplified_logit_noise_on_a_clear_class_passes():
    """The textile case (seed 0, 2 shots per class): OpenVINO fp32 logits 0.051 off at a
    scale of ~55, probabilities 4e-4 off; the logit bound refused the export."""
    reference = [raw([-55.0, -12.0, -14.0]), raw([-3.0, -40.0, -38.0])]
    exported = [raw([-55.05, -11.95, -14.04]), raw([-3.05, -40.0, -37.95])]
    found = compare(reference, exported, FP32, threshold=1.0)
    assert found["failures"] == []
    assert found["logit_max_abs"] == pytest.approx(0.05, abs=1e-5)  # still measured
    assert 0 < found["prob_max_abs"] < FP32.prob_atol
    assert (found["argmax_checked"], found["argmax_agree"]) == (2, 2)


def test_a_real_difference_in_probabilities_fails():
    reference = [raw([-10.0, -11.0, -30.0])]  # p = 0.73 / 0.27
    exported = [raw([-10.0, -10.8, -30.0])]  # p = 0.69 / 0.31: 4 points off, same class
    found = compare(reference, exported, FP32, threshold=1.0)
    assert any(f.startswith("class probabilities differ by up to 0.04") for f in found["failures"])


def test_the_predicted_class_may_swap_only_within_the_tolerance():
    close = [raw([-10.0, -10.004, -30.0])]  # top two 0.1 points apart
    swapped = [raw([-10.004, -10.0, -30.0])]
    assert compare(close, swapped, FP32, threshold=1.0)["failures"] == []
    clear = [raw([-10.0, -10.5, -30.0])]  # 0.62 / 0.38: a swap is a real disagreement
    found = compare(clear, [raw([-10.5, -10.0, -30.0])], FP32, threshold=1.0)
    assert "predicted class differs on 1 clear-cut images" in found["failures"]


def test_the_nearest_shot_is_checked_in_probability_too():
    reference = [raw([-5.0, -9.0], similarity=[-5.0, -60.0, -9.0, -40.0])]
    noisy = [raw([-5.0, -9.0], similarity=[-5.05, -60.0, -9.05, -40.05])]
    assert compare(reference, noisy, FP32, threshold=1.0)["failures"] == []
    moved = [raw([-5.0, -9.0], similarity=[-9.0, -60.0, -5.0, -40.0])]
    failures = compare(reference, moved, FP32, threshold=1.0)["failures"]
    assert any("nearest-shot probabilities" in f for f in failures)
    assert any("nearest labelled shot differs on 1" in f for f in failures)


def test_a_bundle_whose_class_head_is_perturbed_is_refused(fitted, onnx_bundle, copy_bundle):
    """The check can still fail: the bundle's class head (prototype labels and the
    classifier's rows rotated, as a stale or mixed-up support set would leave them)
    disagrees with the inspector's."""
    inspector, images = fitted
    run_selfcheck(inspector, load_bundle(onnx_bundle), images, precision="fp32")  # faithful
    folder = copy_bundle(onnx_bundle)
    manifest = read_manifest(folder)
    head = manifest["head"]["classes"]
    assert head["weights"] is not None  # the logits come from the linear classifier
    head["labels"] = head["labels"][2:] + head["labels"][:2]  # each class -> the next
    head["weights"] = head["weights"][1:] + head["weights"][:1]
    head["bias"] = head["bias"][1:] + head["bias"][:1]
    write_manifest(folder, manifest)
    with pytest.raises(BundleError, match=r"class probabilities differ by up to|predicted class differs"):
        run_selfcheck(inspector, load_bundle(folder), images, precision="fp32")
