"""What the page shows, computed without Gradio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectkit.apps.labelling import views
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import FitRecord, ImageRecord, ImportReport
from defectkit.apps.labelling.review import slim
from defectkit.apps.labelling.reviewer import ReviewProgress
from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds
from defectkit.testing.labelling import label_shots, truth_masks


def test_gallery_items_filter_and_captions(project, files):
    ids = label_shots(project, files)
    project.set_mask(ids["scratch_000"], truth_masks()["scratch_000"])
    items, order = views.gallery_items(project, "all")
    assert len(items) == len(order) == 9
    captions = dict(zip(order, (c for _, c in items), strict=True))
    assert captions[ids["scratch_000"]] == "scratch ✎ · scratch_000.png"
    assert captions[ids["good_002"]] == "unlabelled · good_002.png"
    assert all(Path(path).is_file() and Path(path).parent.name == "thumbs" for path, _ in items)
    assert len(views.gallery_items(project, "unlabelled")[1]) == 3
    assert len(views.gallery_items(project, "labelled")[1]) == 6


def test_shots_markdown_says_what_is_missing(project, files):
    assert "no defect classes yet" in views.shots_markdown(project)
    label_shots(project, files)
    project.add_class("dent")
    text = views.shots_markdown(project)
    assert "good: 2 of 2 ✓" in text and "scratch: 2 of 2 ✓" in text
    assert "dent: 0 of 2 - label 2 more" in text and "9 images, 3 unlabelled" in text
    assert views.label_choices(project) == ["unlabelled", "good", "scratch", "spot", "dent"]


def test_fit_markdown_before_fit(project):
    assert "Not fitted yet" in views.fit_markdown(project)
    assert views.histogram(project) is None


@pytest.mark.slow
def test_fit_markdown_and_histogram_after_fit(fitted):
    project = Project.open(fitted[0])
    text = views.fit_markdown(project)
    assert "efficientnet_lite0" in text and "good 2, scratch 2, spot 2" in text
    assert "changed since this fit" not in text
    chart = views.histogram(project)
    assert chart.ndim == 3 and chart.dtype == np.uint8


def _fit_record(**changes) -> FitRecord:
    return FitRecord(**{
        "id": "f", "created": "t", "backbone": "efficientnet_lite0", "fingerprint": "p",
        "classes": ["good", "pitting"], "shots": {"good": 2, "pitting": 2}, "good_scores": [0.9],
        "defect_scores": {"pitting": [1.4]}, "fitted_thresholds": {"image": 1.093, "pixel": 1.0},
        "seconds": 31.9, **changes,
    })  # fmt: skip


def test_fit_summary_shows_the_wall_time_and_whose_threshold_is_in_use(project, monkeypatch):
    """Rows 3 and 7 of issue 18: the engineer's threshold and the time they waited."""
    monkeypatch.setattr(project, "_fit", _fit_record(threshold=1.0))
    text = views.fit_markdown(project)
    assert "in 31.9 s" in text and "yours, 1.000" in text and "calibrated one is 1.093" in text
    monkeypatch.setattr(project, "_fit", _fit_record())
    assert "the calibrated 1.093" in views.fit_markdown(project)


def test_refit_words_say_what_happened_to_the_threshold():
    kept = views.refit_words(_fit_record(threshold=1.0), _fit_record(threshold=1.0))
    assert "your threshold 1.000 is kept" in kept and "now 1.093" in kept
    dropped = views.refit_words(
        _fit_record(threshold=1.0, backbone="ViT-B-16"),
        _fit_record(fitted_thresholds={"image": 0.8}),
    )
    assert "the calibrated 0.800" in dropped and "yours, 1.000, was for ViT-B-16" in dropped
    assert views.refit_words(None, _fit_record()) == ""


def test_a_partial_import_is_not_headed_error():
    """Row 8 of issue 18: 'added 8 images' under an Error heading."""
    record = ImageRecord(id="a", file="images/a.png", name="a.png", sha256="x", width=1, height=1)
    partial = ImportReport(added=[record] * 8, errors=["x.png: cannot decode the image"])
    assert views.import_status(partial) == ("partial", partial.message())
    assert views.import_status(ImportReport(errors=["x.png: broken"]))[0] == "failed"
    assert views.import_status(ImportReport(added=[record]))[0] == "ok"
    assert views.import_status(ImportReport(duplicates=["a.png"], errors=["b"]))[0] == "partial"


def test_progress_line_says_how_far_the_review_is():
    assert "No unlabelled images" in views.progress_markdown(ReviewProgress())
    running = views.progress_markdown(ReviewProgress(total=18, done=4, running=True, seconds=3.2))
    assert "in the background: 4 of 18" in running and "labelling goes on" in running
    assert views.progress_markdown(ReviewProgress(total=18, done=18, seconds=9.14)) == (
        "Reviewed 18 unlabelled images (9.1 s)."
    )
    failed = views.progress_markdown(ReviewProgress(total=3, error="the model folder is damaged"))
    assert failed == "**Review stopped:** the model folder is damaged"


def _decided(score, probs, classes=("good", "pitting")) -> InspectionResult:
    amap = np.zeros((16, 16), np.float32)
    amap[4:8, 4:8] = score
    raw = RawOutputs(score, amap, np.log(np.asarray(probs)), np.zeros(0))
    return inspection_result(
        raw, classes=classes, thresholds=Thresholds(1.0, 1.0, 1), image_size=(32, 32)
    )


@pytest.mark.parametrize(
    ("score", "probs", "words", "not_words"),
    [  # the two contradictions, and the consistent cases
        (
            3.0,
            (0.999, 0.001),
            "Class: **pitting**, the nearest labelled type; the class head finds it nearer the good",
            "anomaly",
        ),
        (
            0.5,
            (0.001, 0.999),
            "Class: **good** (the score is below the threshold)",
            "Class: **pitting",
        ),
        (3.0, (0.2, 0.8), "Class: **pitting**. Class head: pitting 80%, good 20%", "nearest"),
    ],
)
def test_the_class_line_follows_the_one_rule(score, probs, words, not_words):
    """Row 4 of issue 18: label, caption and probabilities on the page tell one story."""
    result = _decided(score, probs)
    item = slim("a", "a.png", result)
    text = views.describe(item)
    assert words in text and not_words not in text
    row = views.review_rows([item])[0]
    if result.is_defective and "nearest" in words:
        assert row[2] == "pitting" and row[4].startswith("Possibly pitting (the nearest labelled")
