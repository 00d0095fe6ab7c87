"""The review queue's own brush in a real headless browser (issue 19: "a brush stroke
corrects").

A line's review store holds three escalated parts: a spot the model called good (no
region proposed), a scratch whose region the model proposed, and one whose image cannot
be read. The engineer paints the spot's region in the queue, adds a stroke to the
scratch's proposed region (tinted in), and confirms each; the project keeps those masks.
The unreadable part says why and adds nothing. Screenshots go to
``tests/artifacts/app_browser_queue_brush/``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from defectkit.apps.labelling.project import Project
from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask
from defectkit.apps.reviewqueue.store import ReviewStore
from defectkit.core.files import sha256_bytes
from defectkit.testing.app_browser import SLOW_MS, App, AppServer, require_browser

expect = require_browser()
pytestmark = pytest.mark.slow

SIZE = 128


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(90, 160, (SIZE, SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _part(name, image, *, score, model_verdict, label, mask=None) -> ReviewItem:
    return ReviewItem(
        sha256=sha256_bytes(image), created_at=100.0, station="line3", name=name,
        bundle_id="b1", reason="near the threshold", policy="hold", verdict="hold",
        model_verdict=model_verdict, label=label, score=score, threshold=0.5,
        proposal={"caption": f"{label} proposed"}, image=image, mask_png=encode_mask(mask),
    )  # fmt: skip


@pytest.fixture
def line(tmp_path):
    """(project folder, review.db, the scratch's proposed mask)."""
    proposed = np.zeros((SIZE, SIZE), bool)
    proposed[8:20, 8:60] = True  # top left: away from the stroke the test paints
    store = ReviewStore(tmp_path / "review.db")
    store.add(_part("spot.png", _png(1), score=0.48, model_verdict="good", label="good"))
    store.add(_part("scratch.png", _png(2), score=0.56, model_verdict="defect",
                    label="scratch", mask=proposed))  # fmt: skip
    store.add(_part("broken.png", b"\x89PNG truncated", score=0.95, model_verdict="defect",
                    label="scratch"))  # fmt: skip
    store.close()
    project = Project.open(tmp_path / "project")
    project.add_class("scratch")
    project.add_class("spot")
    return tmp_path / "project", tmp_path / "review.db", proposed


def _stored_mask(root, name) -> np.ndarray | None:
    project = Project.open(root, create=False)
    record = next(r for r in project.images if r.name == name)
    return project.load_mask(record.id)


def test_a_stroke_in_the_queue_paints_or_corrects_the_mask_that_is_stored(page, artefacts, tmp_path, line):  # fmt: skip
    root, review_db, proposed = line
    with AppServer(root, tmp_path / "app.log") as server:
        app = App(page, artefacts, "brush")
        app.goto(server.url)
        app.tab("queue")
        page.locator("#queue-source textarea, #queue-source input").first.fill(str(review_db))
        page.locator("#queue-load").click()
        app.status("3 part(s) to review", timeout=SLOW_MS)
        app.idle()
        thumbs = page.locator("#queue-gallery .thumbnail-item")
        editor = page.locator("#queue-editor")

        # The spot the model called good: no region, an empty layer to paint on.
        thumbs.first.click()
        expect(page.locator("#queue-proposal")).to_contain_text("spot.png")
        expect(editor).to_contain_text("No region proposed")
        app.idle(SLOW_MS, "#queue-editor")
        app.paint("#queue-editor")
        page.locator("#queue-label label", has_text="spot").first.click()
        app.shot("spot-painted")
        page.locator("#queue-confirm").click()
        app.status("Added line3-spot.png as spot with a mask", timeout=SLOW_MS)
        spot = _stored_mask(root, "line3-spot.png")
        assert spot is not None and 50 < spot.sum() < SIZE * SIZE // 2, spot.sum()

        # The scratch: its proposed region tinted in and kept; one stroke more.
        expect(page.locator("#queue-summary")).to_contain_text("2 part(s) to review")
        app.idle()
        thumbs.first.click()
        expect(page.locator("#queue-proposal")).to_contain_text("scratch.png")
        expect(page.locator("#queue-label input[value=scratch]")).to_be_checked()
        expect(editor).to_contain_text("tinted yellow")
        expect(page.locator("#queue-keep-mask input")).to_be_checked()
        app.idle(SLOW_MS, "#queue-editor")
        app.paint("#queue-editor")
        app.shot("scratch-corrected")
        page.locator("#queue-confirm").click()
        app.status("Added line3-scratch.png as scratch with a mask", timeout=SLOW_MS)
        scratch = _stored_mask(root, "line3-scratch.png")
        assert scratch is not None
        assert scratch[proposed].mean() > 0.95  # the model's region kept...
        added = scratch & ~proposed
        assert added.sum() > 50 and added[SIZE // 3 :, SIZE // 3 :].any()  # ...and the stroke

        # The unreadable part: says why, adds nothing.
        expect(page.locator("#queue-summary")).to_contain_text("1 part(s) to review")
        app.idle()
        thumbs.first.click()
        expect(editor).to_contain_text("Cannot paint this part", timeout=SLOW_MS)
        expect(editor).to_contain_text("cannot be read")
        page.locator("#queue-confirm").click()
        app.status("cannot be read")
        app.shot("unreadable")
        assert len(Project.open(root, create=False).images) == 2
        app.no_traceback()
