"""The labelling app survives a page reload and an app restart, in a real headless browser.

Issue 18: after a reload the defect classes vanished from the Label choices (rows 1, 2),
a refit reset the engineer's threshold (row 3), and small things lost work silently
(row 8). Here one project is labelled (a painted mask, a note), fitted, and given the
engineer's threshold; then the page is reloaded, and the app restarted, and everything
must come back - and labelling a defect image must still work. Screenshots go to
``tests/artifacts/app_browser_reload/``.
"""

from __future__ import annotations

import pytest

from defectkit.testing.app_browser import REVIEW_ROWS, SLOW_MS, App, AppServer, require_browser
from defectkit.testing.labelling import write_synthetic

expect = require_browser()
pytestmark = pytest.mark.slow
NOTE = "hairline, from the guide rail"
#: The engineer's threshold: not the calibrated one, and inside the slider's range.
THRESHOLD = 0.95


def _label_and_fit(app: App, files) -> dict[str, list[str]]:
    """Classes, uploads, six shots (one painted, one noted), a fit and the engineer's
    threshold; returns the review table."""
    page = app.page
    for name in ("scratch", "spot"):
        app.add_class(name)
        app.status(f"Added class {name}")
    app.upload(list(files.values()))
    app.status("added 9 images")
    app.select_image("scratch_000.png")
    app.paint()
    app.label("scratch_000.png", "scratch", select=False)
    app.status("Saved scratch_000.png: scratch with a mask")
    app.label("scratch_001.png", "scratch", note=NOTE)
    for key, label in (
        ("good_000", "good"),
        ("good_001", "good"),
        ("spot_000", "spot"),
        ("spot_001", "spot"),
    ):
        app.label(f"{key}.png", label)
    app.fit()
    expect(page.locator(REVIEW_ROWS)).to_have_count(3)
    app.set_threshold(THRESHOLD)
    expect(page.locator("#fit-summary")).to_contain_text(f"yours, {THRESHOLD:.3f}")
    app.shot("labelled-fitted-threshold")
    return app.review_rows()


def _everything_is_back(app: App, rows: dict[str, list[str]], when: str) -> None:
    """Labels, classes, masks, notes, the engineer's threshold and the review are back,
    and a defect image can be labelled (rows 1 and 2 of the issue)."""
    page = app.page
    app.tab("label")
    choices = page.locator("#label-choice")
    for label in ("unlabelled", "good", "scratch", "spot"):  # row 1: the classes are choices
        expect(choices).to_contain_text(label)
    counts = page.locator("#shot-counts")
    for line in ("good: 2 of 2", "scratch: 2 of 2", "spot: 2 of 2", "9 images, 3 unlabelled"):
        expect(counts).to_contain_text(line)
    expect(page.locator("#gallery .thumbnail-item", has_text="scratch ✎")).to_have_count(1)
    app.select_image("scratch_000.png")
    expect(page.locator("#selected-image")).to_contain_text("scratch · mask painted")
    app.select_image("scratch_001.png")
    expect(page.locator("#note textarea")).to_have_value(NOTE)
    expect(page.locator("#label-choice input[value=scratch]")).to_be_checked()
    # Row 2: Save on a defect-labelled image works (it failed with "'scratch' is not in
    # the list of choices" and red Error badges).
    page.locator("#save-label").click()
    app.status("Saved scratch_001.png: scratch")
    app.label("spot_002.png", "spot")  # labelling a new defect image works too
    app.label("spot_002.png", "unlabelled")  # and back, so the review is the same
    assert app.error_badges() == [], app.error_badges()
    app.shot(f"{when}-label")

    app.tab("fit")
    expect(page.locator("#threshold input[type=number]")).to_have_value(f"{THRESHOLD}")
    expect(page.locator("#fit-summary")).to_contain_text(f"yours, {THRESHOLD:.3f}")
    expect(page.locator("#review-progress")).to_contain_text("Reviewed 3", timeout=SLOW_MS)
    expect(page.locator(REVIEW_ROWS)).to_have_count(3)
    assert app.review_rows() == rows
    app.no_traceback()
    app.shot(f"{when}-review")


def test_everything_comes_back_after_a_reload_and_a_restart(page, artefacts, tmp_path):
    files = write_synthetic(tmp_path / "images")
    project = tmp_path / "reload-project"
    with AppServer(project, tmp_path / "server.log") as server:
        app = App(page, artefacts, "reload")
        app.goto(server.url)
        rows = _label_and_fit(app, files)

        page.reload()
        app.status("Project")
        app.idle()
        _everything_is_back(app, rows, "after-reload")

        server.restart()
        app.goto(server.url)
        _everything_is_back(app, rows, "after-restart")

        # Row 3: a refit keeps the engineer's threshold, and says so.
        page.locator("#fit").click()
        app.status(f"your threshold {THRESHOLD:.3f} is kept", timeout=SLOW_MS)
        expect(page.locator("#threshold input[type=number]")).to_have_value(f"{THRESHOLD}")
        app.shot("refit-keeps-threshold")
        page.locator("#threshold-reset").click()
        app.status("(calibrated)")
        expect(page.locator("#fit-summary")).to_contain_text("Threshold in use: the calibrated")

        # Row 8: a project without a fit shows no other project's threshold or review.
        app.open_project(tmp_path / "empty-project")
        app.tab("fit")
        expect(page.locator("#threshold input[type=number]")).to_have_value("0")
        expect(page.locator("#threshold")).to_contain_text("fit first")
        expect(page.locator("#fit-summary")).to_contain_text("Not fitted yet")
        expect(page.locator(REVIEW_ROWS)).to_have_count(0)
        app.shot("unfitted-project")


def test_nothing_is_lost_without_being_asked_or_told(page, artefacts, tmp_path):
    """Row 8: deleting a class with shots asks first; the editor cannot wipe the photo."""
    files = write_synthetic(tmp_path / "images")
    with AppServer(tmp_path / "small-things", tmp_path / "server.log") as server:
        app = App(page, artefacts, "small-things")
        app.goto(server.url)
        app.add_class("dent")
        app.status("Added class dent")
        app.upload([files["good_000"], files["scratch_000"]])
        app.status("added 2 images")
        app.label("scratch_000.png", "dent")

        page.locator("#delete-class").click()  # "dent" is the picked class
        app.status("Confirm: class dent has 1 labelled image(s)")
        expect(page.locator("#shot-counts")).to_contain_text("dent: 1 of 2")  # nothing lost yet
        expect(page.locator("#label-choice")).to_contain_text("dent")
        app.shot("delete-asks")
        page.locator("#delete-class").click()
        app.status("Deleted class dent; 1 image(s) are unlabelled again")
        expect(page.locator("#label-choice")).not_to_contain_text("dent")

        # The editor's trash icon wiped the photograph (then Save stored no mask and said
        # nothing): it is not offered, and the eraser and undo remain.
        app.select_image("good_000.png")
        expect(page.locator("#mask-editor button[aria-label='Clear canvas']")).to_be_hidden()
        expect(page.locator("#mask-editor button[aria-label='Erase']")).to_be_visible()
        assert app.error_badges() == []
        app.no_traceback()
