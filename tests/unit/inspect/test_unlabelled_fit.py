"""Unlabelled images in the fit: planted defects stay out of the bank, the cost is capped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectkit.datasets import make_synthetic
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.fit import (
    CALIBRATION_IMAGES,
    MAX_UNLABELLED_MP,
    SCREEN_MIN_IMAGES,
    _add_unlabelled,
    _Grids,
    _Screen,
    basis_words,
)
from defectkit.inspect.inspector import Inspector


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
    assert report.unlabelled == len(unlabelled) and report.unlabelled_judged_by == "labelled"
    kept_out = set(report.unlabelled_rejected)
    planted_at = set(range(len(goods), len(unlabelled)))
    assert planted_at & kept_out, (sorted(kept_out), sorted(planted_at))
    # The images judged good teach the class head all together or not at all (the
    # check itself: tests/unit/inspect/test_class_head.py).
    assert report.unlabelled_taught_classes in (0, len(unlabelled) - len(kept_out))
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
    report = inspector.fit([], unlabelled=unlabelled)
    assert inspector.model.has_verdict and inspector.classes == ("good",)
    assert report.unlabelled_judged_by == "mutual"
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
    assert report.unlabelled_judged_by == "mutual_fallback"
    assert len(report.unlabelled_rejected) <= len(unlabelled) // 2, report.unlabelled_rejected


def test_the_most_unusual_patches_of_images_the_labelled_model_passes_stay_out_of_the_bank():
    # Twelve line images the labelled model passes (every score under its threshold); on
    # its map one patch of image 0 stands far above everything else: a small defect the
    # image score missed. It must not join the bank; the images' other patches do.
    rng = np.random.default_rng(0)
    labelled = _Grids(grids=[torch.from_numpy(rng.normal(size=(4, 8, 8)).astype(np.float32))], owner=[0])
    line = _Grids(grids=[torch.from_numpy(rng.normal(size=(4, 8, 8)).astype(np.float32)) for _ in range(12)], owner=list(range(12)))
    maps = [rng.uniform(0.0, 1.0, size=(8, 8)).astype(np.float32) for _ in range(12)]
    maps[0][3, 4] = 10.0
    screen = _Screen([0.5] * 12, maps, 1.0)
    out, rejected, _, judged_by = _add_unlabelled(labelled, line, 1, InspectorConfig(seed=0), screen)
    assert judged_by == "labelled" and rejected == [] and len(out.grids) == 13 and out.owner[1:] == list(range(1, 13))
    kept = {row: set(out.keep[row].tolist()) for row in range(1, 13)}
    assert 3 * 8 + 4 not in kept[1]
    total = sum(len(k) for k in kept.values())
    assert total >= 0.99 * 12 * 64 - 1  # only the top half-percent of the line's patches stay out


def test_when_the_labelled_threshold_gives_way_the_images_judge_each_other_alone():
    # The labelled model would reject all twelve line images (its threshold is wrong), so
    # the images judge each other: the eleven alike all join the bank, whatever the
    # labelled model's ranking (the ones it ranks most unusual are the looks its good
    # shots do not show, the ones that teach most), and the one unlike the rest stays out.
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 8, 8)).astype(np.float32)
    labelled = _Grids(grids=[torch.from_numpy(base)], owner=[0])
    grids = [base + 0.05 * rng.normal(size=base.shape).astype(np.float32) for _ in range(12)]
    grids[4] = rng.normal(size=base.shape).astype(np.float32) * 3.0
    line = _Grids(grids=[torch.from_numpy(g) for g in grids], owner=list(range(12)))
    scores = [2.0 + 0.1 * i for i in range(12)]
    screen = _Screen(scores, [np.ones((8, 8), np.float32)] * 12, 1.0)
    out, rejected, _, judged_by = _add_unlabelled(labelled, line, 1, InspectorConfig(seed=0), screen, [labelled.grids[0]])
    assert judged_by == "mutual_fallback" and rejected == [4]
    assert out.owner[1:] == [1 + i for i in range(12) if i != 4]


def test_line_images_that_make_the_labelled_defects_look_normal_are_not_used():
    from defectkit.inspect.calibrate import Calibration
    from defectkit.inspect.fit import _line_keeps_defects

    labelled = Calibration(1.5, [1.0, 0.9], {"spot": [2.0, 3.0], "scratch": [1.8, 0.8]})  # 3 stand out
    kept = Calibration(1.5, [1.0, 0.9, 5.0], {"spot": [2.0, 1.2], "scratch": [0.9, 0.8]})  # 2 of 3 (line scores after)
    lost = Calibration(1.5, [1.1, 0.9, 0.5], {"spot": [1.05, 1.2], "scratch": [0.9, 0.8]})  # 1 of 3
    assert _line_keeps_defects(labelled, kept, 2) and not _line_keeps_defects(labelled, lost, 2)
    # No labelled defect stood out to begin with: nothing to lose.
    assert _line_keeps_defects(Calibration(1.5, [1.0], {"spot": [0.5]}), lost, 1)


def test_a_line_of_nothing_but_a_changed_surface_is_not_learned_as_normal():
    # The labelled defect is a whole surface of another kind (a changed weave), and every
    # line image has it: learned, it would make the labelled ones normal, so the fit
    # uses the labelled shots alone and says so.
    from dataclasses import replace

    good = make_synthetic(n_good=2, defects={}, size=(96, 96), seed=8, texture="metal")
    weave = [replace(s, label="weave") for s in make_synthetic(n_good=14, defects={}, size=(96, 96), seed=9, texture="fabric")]
    shots = good + weave[:2]
    line = [s.load_image() for s in weave[2:]]
    config = InspectorConfig(bank_size=512, seed=0, evidence="distance")  # how far from good
    alone = Inspector(config)
    alone.fit(shots)
    inspector = Inspector(config)
    report = inspector.fit(shots, unlabelled=line)
    assert report.unlabelled == len(line) and report.unlabelled_judged_by == "unused"
    assert torch.equal(inspector.model.bank, alone.model.bank)
    assert inspector.thresholds.image == pytest.approx(alone.thresholds.image)
    results = inspector.inspect(line[:3])
    assert all(r.verdict == "defect" for r in results), [r.score for r in results]


def test_a_threshold_resting_on_a_few_good_images_says_so_and_how_to_give_it_more():
    words = basis_words(2, False, "add more")
    assert words.startswith("rests on 2 good images: good parts unlike them") and words.endswith("; add more")
    assert basis_words(1, False, "x").startswith("rests on 1 good image: good parts unlike it,")
    assert basis_words(2, True, "x") == ""  # line images set it
    assert basis_words(CALIBRATION_IMAGES, False, "x") == ""  # as many as a line would give
    assert basis_words(0, False, "x") == ""  # zero-shot: no good shots to rest on
