"""The project's region of interest: checked when drawn, kept across restarts, used by every fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.roi import (
    OUTLINE,
    Roi,
    RoiError,
    check_roi,
    click_to_pixel,
    corners_roi,
    draw_roi,
    fit_roi_words,
    project_roi,
    save_roi,
)
from defectkit.apps.labelling.views import fit_markdown
from defectkit.datasets import make_synthetic
from defectkit.errors import DefectkitError
from defectkit.inspect.config import InspectorConfig

ROI = Roi(0, 0, 128, 128)  # the left half of a 128 x 256 image


# ------------------------------------------------------------------ checking a drawn box
def test_a_drawn_box_is_checked_against_the_image_it_was_drawn_on():
    assert check_roi([10, 5, 100, 60], 256, 128) == Roi(10, 5, 100, 60)
    assert check_roi([10.0, 5, 100, 60], 256, 128) == Roi(10, 5, 100, 60)  # gr.Number floats
    # beyond the image is allowed (a larger image uses more of it) while 8 x 8 px remain
    assert check_roi([200, 0, 1000, 1000], 256, 128) == Roi(200, 0, 1000, 1000)


@pytest.mark.parametrize(
    "values, words",
    [
        ((10, 5, 10, 60), "is empty"),
        ((10, 60, 100, 60), "is empty"),
        ((100, 5, 10, 60), "is inverted"),
        ((10, 60, 100, 5), "is inverted"),
        ((-1, 5, 100, 60), "negative corner"),
        ((10, 5, 100.5, 60), "whole numbers"),
        ((10, 5, 100), "four whole numbers"),
        ((None, 5, 100, 60), "four numbers"),
        ((250, 5, 400, 60), "less than 8 x 8 px of this 256 x 128 image"),
    ],
)
def test_an_empty_inverted_or_off_image_box_is_refused_with_a_message(values, words):
    with pytest.raises(RoiError, match=words) as caught:
        check_roi(values, 256, 128)
    assert isinstance(caught.value, DefectkitError)
    assert "\n" not in str(caught.value)


def test_two_clicked_corners_make_a_box_in_either_order():
    assert corners_roi((100, 60), (10, 5), 256, 128) == Roi(10, 5, 100, 60)
    assert corners_roi((10, 60), (100, 5), 256, 128) == Roi(10, 5, 100, 60)
    with pytest.raises(RoiError, match="is empty"):
        corners_roi((40, 40), (40, 40), 256, 128)  # a double click on one spot


def test_a_click_on_the_display_copy_is_a_pixel_of_the_image():
    # a 6000 x 4000 photo shown at 1280 x 853: the click scales back to its own pixels
    assert click_to_pixel([640, 426.5], (853, 1280), (4000, 6000)) == (3000, 2000)
    assert click_to_pixel([1280, 853], (853, 1280), (4000, 6000)) == (6000, 4000)
    assert click_to_pixel([5, 7], (96, 96), (96, 96)) == (5, 7)


def test_the_region_is_drawn_outlined_with_the_rest_dimmed():
    image = np.full((40, 80, 3), 200, np.uint8)
    drawn = draw_roi(image, Roi(20, 10, 60, 30), scale=0.5)  # a half-size copy: box 10-30 x 5-15
    assert (drawn[5, 10:30] == OUTLINE).all() and (drawn[5:15, 10] == OUTLINE).all()
    assert (drawn[8:12, 12:28] == 200).all()  # inside: untouched
    assert drawn[0, 0].max() < 100 and drawn[30, 70].max() < 100  # outside: dimmed
    assert draw_roi(image, None) is image


# ------------------------------------------------------------------ the project setting
def test_the_region_survives_a_restart_and_clearing_it_forgets_it(tmp_path):
    project = Project.open(tmp_path / "p")
    assert project_roi(project) is None
    save_roi(project, Roi(4, 6, 90, 80))
    again = Project.open(tmp_path / "p")  # a new server process reads the manifest
    assert project_roi(again) == Roi(4, 6, 90, 80)
    settings = json.loads((tmp_path / "p" / "project.json").read_text())["settings"]
    assert settings["roi"] == [4, 6, 90, 80]
    save_roi(again, None)
    assert project_roi(Project.open(tmp_path / "p")) is None


# ------------------------------------------------------------------ every fit uses it
def _square(image: np.ndarray, x: int, y: int, size: int = 16) -> np.ndarray:
    out = image.copy()
    out[y : y + size, x : x + size] = 0
    return out


@pytest.fixture(scope="module")
def roi_project(tmp_path_factory):
    """A project of three good 128 x 256 fabric shots, fitted with the left half as its region
    (the same parts as the inspector's own ROI test), and two more good parts."""
    folder = tmp_path_factory.mktemp("roi")
    samples = make_synthetic(n_good=5, size=(128, 256), seed=24, texture="fabric")
    project = Project.open(folder / "project")
    for sample in samples[:3]:
        path = folder / f"{sample.key}.png"
        Image.fromarray(sample.load_image()).save(path)
        record, _ = project.add_image(path.read_bytes(), path.name)
        project.set_label(record.id, "good")
    save_roi(project, ROI)
    record = project.fit(
        config=InspectorConfig(bank_size=1024, defect_bank_size=256, seed=0), unlabelled=False
    )
    return project, record, [s.load_image() for s in samples[3:]]


def test_the_fit_uses_the_saved_region_and_records_it(roi_project):
    project, record, _ = roi_project
    inspector = project.load_inspector()
    assert inspector.config.roi == tuple(ROI)
    assert inspector.model.tiles.roi == tuple(ROI)
    assert tuple(record.config["roi"]) == tuple(ROI)
    assert fit_roi_words(record) == "; region of interest x 0-128, y 0-128 px (128 x 128)"
    assert "Region of interest: x 0-128, y 0-128 px" in fit_markdown(project)


def test_a_defect_outside_the_region_is_not_flagged_and_one_inside_is(roi_project):
    project, _, goods = roi_project
    inspector = project.load_inspector()
    clean, outside, inside = inspector.inspect(
        [goods[0], _square(goods[0], 180, 56), _square(goods[0], 56, 56)]
    )
    assert clean.verdict == "good" and outside.verdict == "good"
    assert outside.score == pytest.approx(clean.score, rel=1e-6)  # the outside is never seen
    assert inside.verdict == "defect"
    assert not inside.anomaly_map[:, 128:].any()


def test_a_region_changed_after_the_fit_asks_for_a_refit(roi_project, tmp_path):
    import shutil

    shutil.copytree(roi_project[0].root, tmp_path / "copy")
    project = Project.open(tmp_path / "copy")
    assert "click **Fit** to use it" not in fit_markdown(project)
    save_roi(project, None)
    assert "The region of interest is now the whole image: click **Fit** to use it" in fit_markdown(
        project
    )
