"""The Gradio page builds, names its elements, and converts editor values (no browser)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio")

from defectkit.apps.labelling.display import (  # noqa: E402
    editor_value,
    editor_was_cleared,
    mask_from_editor,
    shrink_mask,
)
from defectkit.apps.labelling.ui import create_app  # noqa: E402
from defectkit.apps.labelling.workspace import Workspace  # noqa: E402

ELEM_IDS = {
    "project-path", "open-project", "status", "upload", "folder-path", "add-folder",
    "shot-counts", "class-name", "add-class", "class-select", "rename-class", "delete-class",
    "gallery-filter", "gallery", "selected-image", "label-choice", "note",
    "save-label", "remove-image", "backbone", "fit", "fit-summary", "threshold", "histogram",
    "review-sort", "review-table", "review-gallery", "review-details", "review-overlay",
    "review-mask", "accept-label", "accept-shot", "export-target", "export-precision",
    "export", "export-summary", "export-download", "review-progress", "threshold-reset",
    "roi-panel", "roi-source", "roi-canvas", "roi-summary", "roi-x0", "roi-y0", "roi-x1",
    "roi-y1", "roi-save", "roi-clear", "roi-shots",
}  # fmt: skip


def test_the_page_has_every_stable_elem_id(tmp_path):
    demo = create_app(Workspace(tmp_path / "project"))
    found = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert ELEM_IDS <= found
    backbone = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "backbone")
    assert backbone.value == "efficientnet_lite0"  # the embedded default, preselected
    # "mask-editor" is made by a gr.render block, once per selected image (browser-tested)


def test_workspace_shares_one_project_per_folder(tmp_path):
    workspace = Workspace(tmp_path / "a")
    assert workspace.open(tmp_path / "a") is workspace.open(str(tmp_path / "a") + "/")
    workspace.open(tmp_path / "b")
    assert workspace.recent() == [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(Exception, match="type the folder"):
        workspace.open("  ")


def test_mask_from_editor_reads_the_painted_layer():
    background = np.zeros((40, 60, 4), np.uint8)
    layer = np.zeros((40, 60, 4), np.uint8)
    layer[5:10, 20:30] = (255, 48, 48, 255)
    mask = mask_from_editor(
        {"background": background, "layers": [layer], "composite": None}, (40, 60)
    )
    assert mask.sum() == 50 and mask[5:10, 20:30].all()


def test_mask_from_editor_resizes_and_falls_back_to_the_composite():
    background = np.zeros((20, 30, 4), np.uint8)
    composite = background.copy()
    composite[:10] = (255, 0, 0, 255)
    mask = mask_from_editor(
        {"background": background, "layers": [], "composite": composite}, (40, 60)
    )
    assert mask.shape == (40, 60) and mask[:20].all() and not mask[20:].any()


def test_nothing_painted_is_no_mask():
    blank = np.zeros((20, 30, 4), np.uint8)
    assert (
        mask_from_editor({"background": blank, "layers": [blank], "composite": blank}, (20, 30))
        is None
    )
    assert mask_from_editor(None, (20, 30)) is None


def test_editor_value_tints_the_kept_region_in_and_sends_no_layer():
    """Gradio 6.31 drops a layer it is sent at the first stroke: the region is tinted in."""
    image = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[2:4, 3:6] = True
    value = editor_value(image, mask)
    assert value["layers"] == []
    changed = (value["background"] != image).any(axis=-1)
    assert np.array_equal(changed, mask)
    assert mask_from_editor(value, (20, 30)) is None  # a tint is not a stroke
    assert editor_value(image)["background"] is image


def test_the_editor_paints_on_a_display_copy_and_the_mask_comes_back_full_size():
    full = np.zeros((4000, 6000), bool)
    full[1000:1600, 2400:3000] = True  # a 600 px square
    shown = np.zeros((853, 1280, 3), np.uint8)  # the display copy of a 6000 x 4000 image
    stroke = np.zeros((853, 1280, 4), np.uint8)
    stroke[shrink_mask(full, (853, 1280))] = (255, 48, 48, 255)  # painted over the square
    back = mask_from_editor({"background": shown, "layers": [stroke]}, (4000, 6000))
    assert back.shape == (4000, 6000)
    overlap = (back & full).sum() / (back | full).sum()
    assert overlap > 0.97  # the same region, to a display pixel


def test_an_editor_emptied_by_its_trash_icon_is_told_apart_from_an_unpainted_one():
    """Row 8 of issue 18: after the trash icon, Save must not drop the mask silently."""
    photo = np.full((20, 30, 4), 255, np.uint8)
    assert not editor_was_cleared({"background": photo, "layers": [], "composite": photo})
    assert editor_was_cleared({"background": None, "layers": [], "composite": None})
    assert editor_was_cleared({"background": np.zeros((20, 30, 4), np.uint8), "layers": []})
    assert editor_was_cleared(None)
