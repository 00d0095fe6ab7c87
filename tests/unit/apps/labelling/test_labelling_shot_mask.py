"""The Label tab's brush keeps a shot's saved mask: strokes add to it, a tick box drops it.

The editor values here are what Gradio 6.31's ImageEditor sends back after a stroke:
the background it was opened with and one layer holding the strokes only (it drops any
layer it was sent; the bug this guards against stored that stroke alone).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from defectkit.apps.labelling import shot_mask
from defectkit.apps.labelling.display import display_size

H, W = 1000, 2560  # shown at 500 x 1280: strokes are scaled back to the shot's pixels


@pytest.fixture
def masked(project):
    """(project, image id, saved mask): a scratch shot whose mask was painted before."""
    pixels = np.random.default_rng(0).integers(60, 200, (H, W, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    record, _ = project.add_image(buffer.getvalue(), "scratched.png")
    project.add_class("scratch")
    saved = np.zeros((H, W), bool)
    saved[100:200, 200:1200] = True
    project.annotate(record.id, label="scratch", mask=saved)
    return project, record.id, saved


def _stroke(value: dict, rows: slice, cols: slice) -> dict:
    """``value`` as the browser sends it back with one stroke (display pixels)."""
    layer = np.zeros((*value["background"].shape[:2], 4), np.uint8)
    layer[rows, cols] = (255, 48, 48, 255)
    return {**value, "layers": [layer], "composite": None}


def test_reopening_a_masked_shot_and_adding_a_stroke_stores_the_union(masked):
    project, image_id, saved = masked
    value = shot_mask.paint_start(project, image_id)  # the shot re-opened in the brush
    assert value["background"].shape[:2] == display_size(H, W) == (500, 1280)
    tinted = (value["background"] != project.display_image(image_id)).any(axis=-1)
    assert tinted[50:100, 100:600].all() and not tinted[300:].any()  # the saved mask shows

    edited = _stroke(value, slice(350, 400), slice(700, 1000))  # a second scratch, lower
    done = shot_mask.save(project, image_id, label="scratch", note="", edited=edited)

    stored = project.load_mask(image_id)
    assert stored is not None and stored[saved].all()  # the old mask kept...
    stroke = np.zeros((H, W), bool)
    stroke[700:800, 1400:2000] = True
    assert np.array_equal(stored, saved | stroke)  # ...plus the stroke, at the shot's pixels
    assert done.record.mask and done.notes == ()


def test_saving_without_strokes_keeps_the_mask_and_unticking_clears_it_saying_so(masked):
    project, image_id, saved = masked
    value = shot_mask.paint_start(project, image_id)

    done = shot_mask.save(project, image_id, label="scratch", note="hairline", edited=value)
    assert np.array_equal(project.load_mask(image_id), saved)
    assert done.record.note == "hairline" and done.notes == ()

    done = shot_mask.save(project, image_id, label="scratch", note="", edited=value, keep=False)
    assert project.load_mask(image_id) is None and done.record.mask is None
    assert done.notes == ("the saved mask is dropped (its tick box was cleared)",)


def test_unticking_with_strokes_stores_the_strokes_alone(masked):
    project, image_id, _ = masked
    edited = _stroke(shot_mask.paint_start(project, image_id), slice(350, 400), slice(0, 100))
    done = shot_mask.save(project, image_id, label="scratch", note="", edited=edited, keep=False)
    stroke = np.zeros((H, W), bool)
    stroke[700:800, 0:200] = True
    assert np.array_equal(project.load_mask(image_id), stroke)
    assert done.notes == ("the saved mask is dropped (its tick box was cleared); the new "
                          "strokes are the mask",)  # fmt: skip


def test_an_emptied_editor_keeps_the_mask_unless_unticked(masked):
    project, image_id, saved = masked
    emptied = {"background": None, "layers": [], "composite": None}  # the trash icon
    done = shot_mask.save(project, image_id, label="scratch", note="", edited=emptied)
    assert np.array_equal(project.load_mask(image_id), saved)
    assert "the mask was left as it was" in done.notes[0]
    shot_mask.save(project, image_id, label="scratch", note="", edited=emptied, keep=False)
    assert project.load_mask(image_id) is None


def test_a_good_shot_is_told_its_mask_is_unused(masked):
    project, image_id, _ = masked
    value = shot_mask.paint_start(project, image_id)
    done = shot_mask.save(project, image_id, label="good", note="", edited=value)
    assert done.notes == ("the painted region is kept, but only defect shots use masks",)
