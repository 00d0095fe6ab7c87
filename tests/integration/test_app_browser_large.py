"""Real photographs in the labelling app: non-square and large images, in a headless browser.

Issue 18: thumbnails cropped a 1130 x 460 spindle to its middle (row 5); one 6000 x 4000
image froze the details view for 19.6 s (row 6); the status said "Fitted in 17.6 s"
while the person waited 32 s, and after a restart the page waited 14.5 s for the
unlabelled images to be inspected (row 7). The images are made here (spindle-sized
metal with a red first end and a blue last end, a tall one, a 6000 x 4000 one), never
downloaded. The budget below is a ceiling for this test on 2 shared cores; the median
click-to-render time is measured by ``benchmarks/app_latency.py``
(``benchmarks/results/app_latency.md``). Screenshots go to
``tests/artifacts/app_browser_large/``.
"""

from __future__ import annotations

import re
import time

import pytest

from defectkit.testing.app_browser import (
    REVIEW_ROWS,
    SLOW_MS,
    App,
    AppServer,
    ends_shown,
    require_browser,
)
from defectkit.testing.labelling import write_large, write_spindles

expect = require_browser()
pytestmark = pytest.mark.slow
#: Seconds from a click on a heatmap to its details and heatmap on screen, for any
#: image up to 6000 x 4000 (it was 19.6 s; the benchmark's median is about 1 s).
DETAILS_BUDGET_S = 5.0
SHOTS = {"good_000": "good", "good_001": "good", "pitting_000": "pitting", "pitting_001": "pitting"}


@pytest.fixture
def photos(tmp_path):
    """Four spindle shots, two more spindles, a tall image and a 6000 x 4000 one."""
    spindles = write_spindles(tmp_path / "spindles", n_good=3, n_pitting=3)
    tall = write_spindles(tmp_path / "tall", n_good=1, n_pitting=0, size=(1130, 460), seed=1)
    tall_path = tall["good_000"].rename(tmp_path / "tall" / "tall_good.png")
    large = write_large(tmp_path / "large" / "large_6000x4000.jpg")
    return {**spindles, "tall_good": tall_path, "large_6000x4000": large}


def test_photographs_are_shown_whole_and_answer_quickly(page, artefacts, tmp_path, photos):
    with AppServer(tmp_path / "photos", tmp_path / "server.log") as server:
        app = App(page, artefacts, "photos")
        app.goto(server.url)
        app.add_class("pitting")
        app.status("Added class pitting")
        app.upload(list(photos.values()))
        app.status("added 8 images", timeout=60_000)
        for key, label in SHOTS.items():
            app.label(f"{key}.png", label)

        # Row 5: the whole image in every thumbnail (both end marks), wide and tall.
        for name in ("good_002.png", "pitting_002.png", "tall_good.png", "large_6000x4000.jpg"):
            whole, seen = ends_shown(app.thumbnail_png("#gallery", name))
            assert whole, f"{name}'s thumbnail does not show the whole image: {seen}"
            assert app.thumbnail_whole("#gallery", name)[0]
        app.shot("label-thumbnails")

        # Row 7: the fit's status is the wall time the engineer waited.
        app.tab("fit")
        started = time.perf_counter()
        page.locator("#fit").click()
        app.status("Fitted in", timeout=SLOW_MS)
        waited = time.perf_counter() - started
        shown = float(re.search(r"Fitted in ([\d.]+) s", page.locator("#status").inner_text())[1])
        # What the browser adds (queue, transfer, drawing) is small beside the fit itself.
        assert waited - max(1.5, 0.05 * waited) <= shown <= waited + 0.1, (shown, waited)
        # The 6000 x 4000 photo is inspected at native resolution (about a hundred tiles):
        # minutes on two busy cores, in the background while the page stays usable.
        expect(page.locator("#review-progress")).to_contain_text("Reviewed 4", timeout=3 * SLOW_MS)
        expect(page.locator(REVIEW_ROWS)).to_have_count(4)

        for name in ("good_002.png", "tall_good.png", "large_6000x4000.jpg"):
            whole, seen = app.thumbnail_whole("#review-gallery", name)  # heatmap colours vary
            assert whole, f"{name}'s heatmap thumbnail does not show the whole image: {seen}"
        # The caption column is not cut off: each caption cell shows all of its text.
        cut = page.evaluate(
            """() => [...document.querySelectorAll('#review-table [role=row][data-index]')]
                .map(r => [...r.querySelectorAll('[role=gridcell]')].pop())
                .filter(c => c.scrollWidth > c.clientWidth + 1).length"""
        )
        assert cut == 0, f"{cut} caption cell(s) cut off"

        # Row 6: the details view answers within the budget, the large image included.
        seconds = {
            name: app.open_details(name)
            for name in ("large_6000x4000.jpg", "tall_good.png", "good_002.png")
        }
        seconds["large again"] = app.open_details("large_6000x4000.jpg")
        app.shot("details-large")
        assert max(seconds.values()) <= DETAILS_BUDGET_S, seconds
        expect(page.locator("#review-details")).to_contain_text("large_6000x4000.jpg")
        assert app.error_badges() == []

        # Row 7: after a restart the page answers at once; the review follows in the background.
        server.restart()
        page.goto(server.url)
        app.status("Project", timeout=60_000)
        app.tab("fit")  # what the page was sent with the project: the review under way
        progress = page.locator("#review-progress").inner_text()
        assert "Inspecting the unlabelled images in the background" in progress, progress
        app.shot("after-restart-reviewing")
        app.tab("label")
        app.label("good_002.png", "good")  # labelling goes on meanwhile
        app.tab("fit")
        expect(page.locator("#review-progress")).to_contain_text("Reviewed 3", timeout=3 * SLOW_MS)
        app.no_traceback()
