"""Review: unlabelled images inspected once per fit in the background, re-decided at any
threshold without the model, and drawn on display-sized copies."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from defectkit.apps.labelling.display import DisplayMaps, mask_image, overlay_image
from defectkit.apps.labelling.histogram import render_histogram, score_range
from defectkit.apps.labelling.importing import add_files
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import FitRecord
from defectkit.apps.labelling.review import SORTS, rethreshold, slim, sort_reviewed
from defectkit.apps.labelling.reviewer import Reviewer
from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds

CLASSES = ("good", "scratch", "spot")


def _result(score: float, threshold: float = 1.0, size=(64, 64)) -> InspectionResult:
    amap = np.zeros((64, 64), np.float32)
    amap[20:30, 10:40] = score  # one elongated region
    result = inspection_result(
        RawOutputs(score, amap, np.array([0.0, 3.0, 1.0]), np.zeros(0)), classes=CLASSES,
        thresholds=Thresholds(image=threshold, pixel=min(1.0, threshold)), image_size=size,
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


def test_slim_keeps_the_words_and_display_sized_maps_of_a_large_image():
    """A 6000 x 4000 result carries 120 MB of maps; the review keeps them at display size."""
    big = _result(2.0, size=(4000, 6000))
    assert big.anomaly_map.shape == (4000, 6000)
    item = slim("x", "x.jpg", big)
    assert (
        item.result.anomaly_map.size == 0
        and item.result.mask.size == 0
        and item.result.image is None
    )
    assert item.maps.anomaly_map.shape == item.maps.mask.shape == (853, 1280)
    assert item.maps.mask.any() and item.maps.image_size == (4000, 6000)
    assert (item.result.caption, item.result.boxes) == (big.caption, big.boxes)  # original pixels
    again = rethreshold(item.result, CLASSES, Thresholds(1.5, 1.0))
    assert again.anomaly_map.shape == (4000, 6000)  # decided again at the image's size


def test_sort_orders():
    items = [slim(n, n, _result(s)) for n, s in (("b.png", 1.0), ("A.png", 3.0), ("c.png", 2.0))]
    names = lambda xs: [i.name for i in xs]  # noqa: E731
    assert names(sort_reviewed(items, "score, highest first")) == ["A.png", "c.png", "b.png"]
    assert names(sort_reviewed(items, "score, lowest first")) == ["b.png", "c.png", "A.png"]
    assert names(sort_reviewed(items, "name")) == ["A.png", "b.png", "c.png"]
    assert names(sort_reviewed(items, "unknown")) == names(sort_reviewed(items, next(iter(SORTS))))


def test_pictures_are_drawn_at_the_size_they_are_shown():
    result = _result(2.0, size=(400, 600))
    maps = DisplayMaps.of(result.anomaly_map, result.mask)
    shown = np.full((40, 60, 3), 128, np.uint8)  # e.g. a thumbnail
    heat = overlay_image(shown, maps, result.threshold, result.boxes)
    assert heat.shape == shown.shape and not np.array_equal(heat, shown)
    (box,) = maps.boxes_at(shown.shape, result.boxes)
    assert box == [int(v / 10) for v in result.boxes[0]]  # the box scaled with the picture
    painted = mask_image(shown, maps.mask)  # a 400 x 600 mask on a 40 x 60 picture
    assert painted.shape == shown.shape and (painted[..., 0] > painted[..., 1]).any()


def test_histogram_draws_both_groups_and_the_threshold():
    chart = render_histogram([0.5, 0.6], [2.0, 2.5], 1.2, unlabelled=[0.9], size=(300, 120))
    assert chart.shape == (120, 300, 3)
    colours = {tuple(c) for c in chart.reshape(-1, 3)}
    assert (46, 160, 67) in colours and (214, 48, 49) in colours and (20, 20, 20) in colours
    assert score_range([0.5, 2.5], 1.2) == pytest.approx(2.5 * 1.15)
    assert render_histogram([], [], 1.0).shape[2] == 3  # before any shot: still a chart


# --------------------------------------------------------------------------- the reviewer
class FakeInspector:
    """Scores each image by its mean grey (brighter = more anomalous); counts model calls.

    With ``gate``, each call waits for it: the test decides when the model "finishes".
    """

    caption_context = CaptionContext()

    def __init__(self, project: Project, gate: threading.Event | None = None) -> None:
        self.project, self.gate, self.calls = project, gate, 0

    def inspect(self, images, paths):
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the model"
        self.calls += len(images)
        out = []
        for image in images:
            score = float(np.asarray(image).mean()) / 64.0
            amap = np.full((8, 8), score / 2, np.float32)
            amap[2:4, 2:5] = score
            raw = RawOutputs(score, amap, np.array([0.0, 2.0, 1.0]), np.zeros(0))
            out.append(inspection_result(
                raw, classes=CLASSES, thresholds=self.project.thresholds(), image=image
            ))  # fmt: skip
        return out


@pytest.fixture
def reviewed_project(project, files, monkeypatch):
    """A project with 9 unlabelled images and a fit record, whose model is a FakeInspector."""
    add_files(project, files.values())
    project._fit = FitRecord(
        id="fit-1", created="now", backbone="efficientnet_lite0", fingerprint="-",
        classes=list(CLASSES), shots={}, good_scores=[0.5], defect_scores={"scratch": [3.0]},
        fitted_thresholds={"image": 2.0, "pixel": 1.5, "min_defect_area": 1},
    )  # fmt: skip
    fake = FakeInspector(project)
    monkeypatch.setattr(project, "load_inspector", lambda: fake)
    return project, fake


def test_opening_a_fitted_project_does_not_wait_for_the_review(reviewed_project):
    """Row 7 of issue 18: the review runs in the background; start() returns at once."""
    project, fake = reviewed_project
    fake.gate = threading.Event()
    reviewer = Reviewer(project)
    progress = reviewer.start()  # would block here if the model ran in the caller
    assert progress.running and (progress.done, progress.total) == (0, 9)
    assert reviewer.items() == []  # nothing inspected yet, nothing invented
    fake.gate.set()
    done = reviewer.wait(30)
    assert done.finished and (done.done, done.total) == (9, 9) and done.error is None
    assert len(reviewer.items()) == 9 and fake.calls == 9


def test_the_model_runs_once_per_image_and_fit_and_the_threshold_redecides(
    reviewed_project, monkeypatch
):
    project, fake = reviewed_project
    reviewer = Reviewer(project)
    reviewer.start()
    reviewer.wait(30)
    items = {i.name: i for i in reviewer.items()}
    assert fake.calls == 9 and len(items) == 9
    decided = []
    monkeypatch.setattr("defectkit.apps.labelling.reviewer.rethreshold", _counting(decided))
    reviewer.items()
    reviewer.item(next(iter(items.values())).id)
    assert decided == []  # a click that only shows a result decides nothing again
    scores = sorted(i.result.score for i in items.values())
    project._fit = FitRecord.from_dict({**project._fit.to_dict(), "threshold": scores[4] + 1e-6})
    again = reviewer.items()
    assert len(decided) == 9 and fake.calls == 9  # re-decided, not re-inspected
    assert sum(i.result.is_defective for i in again) == 4
    reviewer.start()
    assert reviewer.wait(5).done == 9 and fake.calls == 9  # nothing new to inspect
    reviewer.forget(again[0].id)
    reviewer.start()
    reviewer.wait(30)
    assert fake.calls == 10
    project._fit = FitRecord.from_dict({**project._fit.to_dict(), "id": "fit-2"})
    assert reviewer.items() == []  # a new fit: the old results are stale
    reviewer.start()
    reviewer.wait(30)
    assert fake.calls == 19 and len(reviewer.items()) == 9


def test_a_refit_during_a_review_starts_its_own_review(reviewed_project):
    project, fake = reviewed_project
    fake.gate = threading.Event()
    reviewer = Reviewer(project)
    assert reviewer.start().running  # fit-1's review, held in the model
    project._fit = FitRecord.from_dict({**project._fit.to_dict(), "id": "fit-2"})
    progress = reviewer.start()  # not held up by fit-1's job
    assert progress.running and progress.done == 0
    fake.gate.set()
    assert reviewer.wait(30).finished
    assert len(reviewer.items()) == 9 and all(i.result.threshold == 2.0 for i in reviewer.items())


def test_a_failing_review_says_why_in_one_line(reviewed_project, monkeypatch):
    project, fake = reviewed_project
    calls = []

    def broken(images, paths):
        calls.append(len(images))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(fake, "inspect", broken)
    reviewer = Reviewer(project)
    reviewer.start()
    progress = reviewer.wait(30)
    assert not progress.running and "out of memory" in progress.error and progress.done == 0
    reviewer.start(retry=False)  # the page's poll reports the failure, does not retry it
    assert reviewer.wait(30).error and len(calls) == 1
    reviewer.start()  # the engineer's next action tries again
    assert reviewer.wait(30).error and len(calls) == 2


def _counting(calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return rethreshold(*args, **kwargs)

    return counted


@pytest.mark.slow
def test_review_of_a_real_fit(fitted):
    root, ids = fitted
    project = Project.open(root)
    reviewer = Reviewer(project)
    reviewer.start()
    assert reviewer.wait(120).finished
    items = {i.name: i for i in reviewer.items()}
    assert sorted(items) == ["good_002.png", "scratch_002.png", "spot_002.png"]
    scratch = items["scratch_002.png"]
    assert scratch.result.verdict == "defect" and scratch.maps.anomaly_map.shape == (96, 96)


def test_while_results_come_in_the_slider_keeps_its_value_and_its_range_follows():
    import gradio as gr

    from defectkit.apps.labelling.tabs.fit import range_only

    # what the review gives after a refit: range, value and all
    full = gr.update(minimum=0.0, maximum=2.5, value=1.02, interactive=True, label="Threshold")
    assert range_only(full) == gr.update(maximum=2.5)  # the value is the engineer's
    assert range_only(gr.update(value=0.0, interactive=False)) == gr.update()  # nothing to follow
