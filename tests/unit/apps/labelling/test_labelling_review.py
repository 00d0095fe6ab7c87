"""Review: results of the unlabelled images, re-decided at any threshold without the model."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.apps.labelling.histogram import render_histogram, score_range
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.review import (
    SORTS,
    ReviewCache,
    Reviewed,
    describe,
    mask_image,
    overlay_image,
    rethreshold,
    sort_reviewed,
)
from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds

CLASSES = ("good", "scratch", "spot")


def _result(score: float, threshold: float = 1.0) -> InspectionResult:
    amap = np.zeros((64, 64), np.float32)
    amap[20:30, 10:40] = score  # one elongated region
    result = inspection_result(
        RawOutputs(score, amap, np.array([0.0, 3.0, 1.0]), np.zeros(0)), classes=CLASSES,
        thresholds=Thresholds(image=threshold, pixel=min(1.0, threshold)), image_size=(64, 64),
    )  # fmt: skip
    return result


def test_rethreshold_equals_a_fresh_decision_at_the_new_threshold():
    before = _result(2.0, threshold=1.0)
    assert before.verdict == "defect" and before.label == "scratch"
    after = rethreshold(before, CLASSES, Thresholds(image=3.0, pixel=1.0))
    assert (after.verdict, after.label, after.threshold) == ("good", "good", 3.0)
    assert not after.mask.any() and after.defects == []
    direct = _result(2.0, threshold=3.0)
    assert after.caption == direct.caption  # the caption follows the threshold too
    back = rethreshold(after, CLASSES, Thresholds(image=1.0, pixel=1.0))
    assert back.verdict == "defect" and back.label == "scratch"
    assert np.array_equal(back.mask, before.mask) and back.defects == before.defects
    assert back.probabilities == pytest.approx(before.probabilities)
    assert back.caption == before.caption


def test_defects_get_a_caption():
    made = rethreshold(_result(2.0), CLASSES, Thresholds(1.5, 1.0))
    assert made.caption and "scratch" in made.caption.lower()


def test_rethreshold_keeps_the_caption_evidence():
    amap = np.zeros((64, 64), np.float32)
    amap[20:30, 10:40] = 2.0
    context = CaptionContext(CLASSES, (None, "hairline scratch from the gripper", "oil droplet"))
    raw = RawOutputs(2.0, amap, np.array([0.0, 3.0, 1.0]), np.array([-9.0, -1.0, -5.0]))
    before = inspection_result(
        raw, classes=CLASSES, thresholds=Thresholds(1.0, 1.0), context=context, image_size=(64, 64)
    )
    assert before.caption.endswith("like the labelled example 'hairline scratch from the gripper'.")
    after = rethreshold(before, CLASSES, Thresholds(1.5, 1.0), context)
    assert after.is_defective and after.caption.endswith(before.caption[-60:])
    assert after.defects[0].note == before.defects[0].note
    assert after.raw is before.raw  # decided again from the raw outputs, not rebuilt


def _reviewed(name: str, score: float) -> Reviewed:
    return Reviewed(id=name, name=name, result=_result(score))


def test_sort_orders():
    items = [_reviewed("b.png", 1.0), _reviewed("A.png", 3.0), _reviewed("c.png", 2.0)]
    names = lambda xs: [i.name for i in xs]  # noqa: E731
    assert names(sort_reviewed(items, "score, highest first")) == ["A.png", "c.png", "b.png"]
    assert names(sort_reviewed(items, "score, lowest first")) == ["b.png", "c.png", "A.png"]
    assert names(sort_reviewed(items, "name")) == ["A.png", "b.png", "c.png"]
    assert names(sort_reviewed(items, "unknown")) == names(sort_reviewed(items, next(iter(SORTS))))


def test_images_for_the_detail_view():
    image = np.full((64, 64, 3), 128, np.uint8)
    result = _result(2.0)
    heat = overlay_image(image, result)
    assert heat.shape == image.shape and not np.array_equal(heat, image)
    painted = mask_image(image, result.mask)
    assert (painted[result.mask][:, 0] > painted[~result.mask][:, 0].max()).all()
    text = describe(_reviewed("x.png", 2.0))
    assert "DEFECT" in text and "scratch" in text and "2.000" in text


def test_histogram_draws_both_groups_and_the_threshold():
    chart = render_histogram([0.5, 0.6], [2.0, 2.5], 1.2, unlabelled=[0.9], size=(300, 120))
    assert chart.shape == (120, 300, 3)
    colours = {tuple(c) for c in chart.reshape(-1, 3)}
    assert (46, 160, 67) in colours and (214, 48, 49) in colours and (20, 20, 20) in colours
    assert score_range([0.5, 2.5], 1.2) == pytest.approx(2.5 * 1.15)
    assert render_histogram([], [], 1.0).shape[2] == 3  # before any shot: still a chart


class _CountingInspector:
    def __init__(self, inspector):
        self.inner, self.calls = inspector, 0
        self.caption_context = inspector.caption_context

    def inspect(self, images, paths):
        self.calls += len(images)
        return self.inner.inspect(images, paths)


@pytest.mark.slow
def test_review_runs_the_model_once_per_image_and_fit(fitted, monkeypatch):
    root, ids = fitted
    project = Project.open(root)
    counting = _CountingInspector(project.load_inspector())
    monkeypatch.setattr(project, "load_inspector", lambda: counting)
    cache = ReviewCache()
    items = cache.review(project)
    assert sorted(i.name for i in items) == ["good_002.png", "scratch_002.png", "spot_002.png"]
    assert counting.calls == 3
    scratch = next(i for i in items if i.name == "scratch_002.png")
    assert scratch.result.verdict == "defect"
    assert scratch.result.anomaly_map.shape == (96, 96)
    # moving the threshold re-decides from the cache
    high = scratch.result.score + 1.0
    monkeypatch.setattr(project, "thresholds", lambda: Thresholds(image=high, pixel=1.0))
    again = {i.name: i for i in cache.review(project)}
    assert counting.calls == 3 and again["scratch_002.png"].result.verdict == "good"
    cache.forget(ids["scratch_002"])
    cache.review(project)
    assert counting.calls == 4
