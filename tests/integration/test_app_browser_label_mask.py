"""Re-opening a labelled shot in the Label tab loses nothing of its mask (real Chromium).

A scratch shot whose mask was painted before is selected again: its mask is tinted into
the brush's picture and the "keep the saved mask" box is ticked. One stroke more and
Save store the union; Save without strokes keeps it; unticking and saving removes it,
saying so. Gradio 6.31's ImageEditor dropped a mask sent as a layer at the first
stroke, and the stroke alone was stored. Screenshots go to
``tests/artifacts/app_browser_label_mask/``.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from defectkit.apps.labelling.project import Project
from defectkit.testing.app_browser import SLOW_MS, App, AppServer, require_browser

expect = require_browser()
pytestmark = pytest.mark.slow

SIZE = 128


@pytest.fixture
def masked(tmp_path):
    """(project folder, the saved mask) of a project with one masked scratch shot."""
    pixels = np.random.default_rng(3).integers(90, 160, (SIZE, SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    project = Project.open(tmp_path / "project")
    record, _ = project.add_image(buffer.getvalue(), "scratched.png")
    project.add_class("scratch")
    saved = np.zeros((SIZE, SIZE), bool)
    saved[8:20, 8:60] = True  # top left: away from the stroke App.paint draws (the middle)
    project.annotate(record.id, label="scratch", mask=saved)
    return tmp_path / "project", saved


def _stored(root) -> np.ndarray | None:
    project = Project.open(root, create=False)
    return project.load_mask(project.images[0].id)


def _wait_for_note(root, note: str, seconds: float = SLOW_MS / 1000) -> None:
    """Until the project on disk holds ``note`` (the Save landed); bounded."""
    deadline = time.monotonic() + seconds
    while Project.open(root, create=False).images[0].note != note:
        assert time.monotonic() < deadline, "the Save did not land"
        time.sleep(0.2)


def test_a_stroke_on_a_reopened_shot_adds_to_its_saved_mask(page, artefacts, tmp_path, masked):
    root, saved = masked
    with AppServer(root, tmp_path / "app.log") as server:
        app = App(page, artefacts, "label-mask")
        app.goto(server.url)
        app.select_image("scratched.png")
        expect(page.locator("#mask-editor")).to_contain_text("saved mask is tinted yellow")
        keep = page.locator("#keep-mask input")
        expect(keep).to_be_checked()
        app.paint()
        app.shot("stroke-on-saved-mask")
        page.locator("#save-label").click()
        app.status("Saved scratched.png: scratch with a mask", timeout=SLOW_MS)
        union = _stored(root)
        assert union is not None and union[saved].all()  # the saved mask kept...
        added = union & ~saved
        assert added.sum() > 50 and added[SIZE // 3 :, SIZE // 3 :].any()  # ...and the stroke

        # The brush is made afresh showing the mask as stored: Save alone keeps it.
        app.idle(SLOW_MS, "#mask-editor")
        expect(keep).to_be_checked()
        page.locator("#note textarea").fill("second scratch below the first")
        page.locator("#save-label").click()
        _wait_for_note(root, "second scratch below the first")
        assert np.array_equal(_stored(root), union)

        # The save's outputs (the brush made afresh) land after the file: on a busy
        # machine a click before they do raced them and Gradio showed "Error".
        app.idle(SLOW_MS, "#mask-editor")
        keep.uncheck()
        page.locator("#save-label").click()
        app.status("the saved mask is dropped", timeout=SLOW_MS)
        app.shot("mask-dropped")
        assert _stored(root) is None
        expect(keep).to_be_hidden()  # no saved mask left to keep
        app.no_traceback()
