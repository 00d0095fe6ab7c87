"""The region of interest in a real headless browser: drawn once with two clicks, refused
when empty or inverted, shown on the shots, used by the fit, cleared.

Issue 15, item 3: the region existed in the config and the CLI (``inspect fit --roi``)
but the app had no way to set it. Screenshots go to ``tests/artifacts/app_browser_roi/``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from defectkit.testing.app_browser import SLOW_MS, App, AppServer, require_browser

expect = require_browser()
pytestmark = pytest.mark.slow


def _fabric(folder) -> list:
    """Five 128 x 256 fabric parts (the inspector's own ROI test's), as PNG files."""
    from defectkit.datasets import make_synthetic

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in make_synthetic(n_good=5, size=(128, 256), seed=24, texture="fabric"):
        path = folder / f"{sample.key}.png"
        Image.fromarray(sample.load_image()).save(path)
        paths.append(path)
    return paths


def _click(page, fx: float, fy: float) -> None:
    """Click the region canvas's picture at fractions of its drawn width and height (the
    picture is centred in its element, scaled down to fit and never up, as Gradio draws it)."""
    page.wait_for_function(  # after a click the canvas is sent again: wait for it to load
        "() => { const e = document.querySelector('#roi-canvas img');"
        " return !!e && e.complete && e.naturalWidth > 0; }"
    )
    img = page.locator("#roi-canvas img").first
    box = img.bounding_box()
    nw, nh = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    r = min(box["width"] / nw, box["height"] / nh, 1.0)
    left, top = box["x"] + (box["width"] - nw * r) / 2, box["y"] + (box["height"] - nh * r) / 2
    page.mouse.click(left + fx * nw * r, top + fy * nh * r)


def _thumbnail(page) -> bytes:
    return (
        page.locator("#roi-shots .thumbnail-item", has_text="good_001")
        .first.locator("img")
        .first.screenshot()
    )


def _outlined(png: bytes) -> int:
    """Pixels of the region's outline colour (a saturated yellow, far from the beige
    fabric even where the browser blends it with its neighbours) in a screenshot."""
    import io

    r, g, b = np.moveaxis(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int), -1, 0)
    return int(((r > 150) & (g > 110) & (r - b > 100)).sum())


def test_the_region_is_drawn_once_shown_on_the_shots_and_used_by_the_fit(page, artefacts, tmp_path):
    files = _fabric(tmp_path / "images")
    project = tmp_path / "roi-project"
    with AppServer(project, tmp_path / "server.log") as server:
        app = App(page, artefacts, "roi")
        app.goto(server.url)
        app.upload(files)
        app.status("added 5 images")
        for name in ("good_000.png", "good_001.png", "good_002.png"):
            app.label(name, "good")

        app.tab("fit")
        page.locator("#roi-panel").get_by_text("Region of interest").first.click()
        expect(page.locator("#roi-summary")).to_contain_text("No region")
        expect(page.locator("#roi-canvas img")).to_be_visible()
        expect(page.locator("#roi-canvas")).to_contain_text("256 x 128 px")
        app.idle()

        # Bad input first: nothing is saved.
        _click(page, 0.3, 0.3)
        app.status("First corner at")
        _click(page, 0.3, 0.3)  # the same spot: an empty box
        app.status("is empty")
        for axis, value in zip(("x0", "y0", "x1", "y1"), (120, 5, 10, 100), strict=True):
            page.locator(f"#roi-{axis} input").fill(str(value))
        page.locator("#roi-save").click()
        app.status("is inverted")
        expect(page.locator("#roi-summary")).to_contain_text("No region")
        assert "roi" not in json.loads((project / "project.json").read_text())["settings"]
        assert _outlined(_thumbnail(page)) == 0  # no outline colour in the fabric itself
        app.shot("refused")

        # Two clicks on opposite corners of the left half (in either order).
        page.reload()
        app.status("Project", timeout=60_000)
        app.idle()
        app.tab("fit")
        page.locator("#roi-panel").get_by_text("Region of interest").first.click()
        expect(page.locator("#roi-canvas img")).to_be_visible()
        app.idle()
        _click(page, 0.49, 0.98)
        app.status("First corner at")
        app.idle()
        _click(page, 0.01, 0.02)
        app.status("Region of interest saved: x ")
        saved = json.loads((project / "project.json").read_text())["settings"]["roi"]
        x0, y0, x1, y1 = saved
        assert x0 <= 4 and y0 <= 5 and 120 <= x1 <= 128 and y1 >= 122, saved
        expect(page.locator("#roi-summary")).to_contain_text(f"x {x0}-{x1}, y {y0}-{y1} px")
        expect(page.locator("#roi-panel")).to_contain_text(f"Region of interest: x {x0}-{x1}")
        expect(page.locator("#roi-x1 input")).to_have_value(str(x1))
        # The region is drawn on the canvas and on every shot's thumbnail.
        expect(page.locator("#roi-shots .thumbnail-item")).to_have_count(5)
        app.idle()
        assert _outlined(_thumbnail(page)) > 20
        assert _outlined(page.locator("#roi-canvas img").first.screenshot()) > 50
        app.shot("drawn")

        page.locator("#fit").click()
        app.status("Fitted in", timeout=SLOW_MS)
        app.status(f"region of interest x {x0}-{x1}, y {y0}-{y1} px")
        expect(page.locator("#fit-summary")).to_contain_text(f"Region of interest: x {x0}-{x1}")
        fit = json.loads((project / "project.json").read_text())["fit"]
        assert fit["config"]["roi"] == saved
        app.shot("fitted")

        # Cleared: the next fit uses the whole image, and the summary says this one is out of date.
        page.locator("#roi-clear").click()
        app.status("Region of interest cleared")
        expect(page.locator("#roi-summary")).to_contain_text("No region")
        expect(page.locator("#fit-summary")).to_contain_text("now the whole image: click Fit")
        assert "roi" not in json.loads((project / "project.json").read_text())["settings"] or (
            json.loads((project / "project.json").read_text())["settings"]["roi"] is None
        )
        assert app.error_badges() == []
        app.no_traceback()
