"""Unlabelled images in the fit: planted defects stay out of the bank, the cost is capped."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.datasets import make_synthetic
from defectkit.inspect.fit import MAX_UNLABELLED_MP, SCREEN_MIN_IMAGES
from defectkit.inspect.inspector import Inspector, InspectorConfig


@pytest.fixture(scope="module")
def data():
    samples = make_synthetic(n_good=10, defects={"scratch": 4, "spot": 4}, size=(96, 96), seed=5, texture="metal")
    good = [s for s in samples if s.label == "good"]
    scratch = [s for s in samples if s.label == "scratch"]
    spot = [s for s in samples if s.label == "spot"]
    shots = good[:2] + scratch[:2] + spot[:2]
    return shots, good[2:], scratch[2:] + spot[2:]


def test_planted_defects_in_unlabelled_images_stay_out_and_stay_detected(data):
    shots, goods, defects = data
    # A line's mix: mostly good, a few defects nobody labelled.
    planted = defects[:3]
    unlabelled = [s.load_image() for s in goods] + [s.load_image() for s in planted]
    inspector = Inspector(InspectorConfig(bank_size=512, seed=0))
    report = inspector.fit(shots, unlabelled=unlabelled)
    assert report.unlabelled == len(unlabelled)
    kept_out = set(report.unlabelled_rejected)
    planted_at = set(range(len(goods), len(unlabelled)))
    assert planted_at & kept_out, (sorted(kept_out), sorted(planted_at))
    # What was kept out is still found: the planted images are judged defects.
    results = inspector.inspect([unlabelled[i] for i in sorted(planted_at & kept_out)])
    assert all(r.verdict == "defect" for r in results), [r.score for r in results]


def test_unlabelled_images_over_the_pixel_cap_are_skipped_and_positions_kept(data):
    shots, goods, _ = data
    side = int((MAX_UNLABELLED_MP * 1e6) ** 0.5) + 8
    huge = np.full((side, side, 3), 128, np.uint8)
    unlabelled = [huge] + [s.load_image() for s in goods[:3]]
    report = Inspector(InspectorConfig(bank_size=512, seed=0)).fit(shots, unlabelled=unlabelled)
    assert report.unlabelled_skipped == 1 and report.unlabelled == 3
    assert all(1 <= i < len(unlabelled) for i in report.unlabelled_rejected)


def test_zero_labelled_and_unlabelled_images_give_a_verdict_model(data):
    _, goods, defects = data
    unlabelled = [s.load_image() for s in goods] + [defects[0].load_image()]
    inspector = Inspector(InspectorConfig(bank_size=512, seed=0))
    inspector.fit([], unlabelled=unlabelled)
    assert inspector.model.has_verdict and inspector.classes == ("good",)
    (result,) = inspector.inspect([defects[1].load_image()])
    assert result.verdict in ("good", "defect") and np.isfinite(result.score)


def test_a_threshold_that_would_reject_most_line_images_gives_way_to_mutual_scoring(data):
    shots, goods, defects = data
    # One good part labelled twice: nothing left out differs from it, so the labelled
    # model's threshold sits under every other good part.
    twin = [shots[0], shots[0]] + [s for s in shots if s.label != "good"]
    unlabelled = [s.load_image() for s in goods] + [d.load_image() for d in defects[:2]]
    assert len(unlabelled) >= SCREEN_MIN_IMAGES
    report = Inspector(InspectorConfig(bank_size=512, seed=0)).fit(twin, unlabelled=unlabelled)
    assert len(report.unlabelled_rejected) <= len(unlabelled) // 2, report.unlabelled_rejected
