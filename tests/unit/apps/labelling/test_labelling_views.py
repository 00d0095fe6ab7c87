"""What the page shows, computed without Gradio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectkit.apps.labelling import views
from defectkit.apps.labelling.project import Project
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
