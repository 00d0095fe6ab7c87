"""The whole line-to-lab loop in a real headless browser (issue 19's first "Done when" row).

A daemon follows a registry's ``current`` bundle, fitted without spots, whose uncertainty
band escalates a spot it guesses wrong (good or a scratch); the part comes first in the app's review
queue with the model's proposal pre-filled, and a heavier model's second opinion beside
it; the engineer corrects the class; the app refits and exports; the gate lists the
flip; the new bundle is promoted; the daemon reloads it; the same part now gets the
corrected class. Screenshots go to ``tests/artifacts/app_browser_loop/``.
"""

from __future__ import annotations

import pytest

from defectkit.testing import loop
from defectkit.testing.app_browser import SLOW_MS, App, AppServer, require_browser
from defectkit.testing.opinions import fit_heavy

expect = require_browser()
pytestmark = pytest.mark.slow


def _load_queue(app: App, line: loop.Line, url: str, heavy: str = "") -> None:
    page = app.page
    app.tab("queue")
    page.locator("#queue-source textarea, #queue-source input").first.fill(url)
    page.locator("#queue-token input").fill(loop.TOKEN)
    page.locator("#queue-heavy textarea, #queue-heavy input").first.fill(heavy)
    page.locator("#queue-load").click()
    app.status("2 part(s) to review", timeout=SLOW_MS)
    app.idle()


def test_a_corrected_borderline_part_comes_back_right_from_the_line(page, artefacts, tmp_path):
    line = loop.stage_line(tmp_path)
    heavy = fit_heavy(tmp_path / "heavy-model")
    daemon = loop.serve(line)
    try:
        first = {key: loop.post(daemon.url, line.files[key]) for key in loop.PARTS}
        # Both spots are held for review whatever the model's guess (a scratch, or good
        # just under the threshold, depending on the calibration): the loop corrects the
        # one the queue puts first, the least certain.
        held = [key for key in ("spot_002", "spot_003") if first[key]["verdict"] == "hold"]
        assert held, {key: first[key] for key in ("spot_002", "spot_003")}
        spot = min(held, key=lambda k: abs(first[k]["score"] - first[k]["threshold"]) / abs(first[k]["threshold"]))
        flagged = first[spot]
        assert flagged["label"] in ("scratch", "good"), flagged
        proposed, score = flagged["label"], f"{flagged['score']:.2f}"
        assert first["spot_002"]["review"] and not first["scratch_003"].get("review")
        v1 = flagged["bundle_id"]

        with AppServer(line.project, tmp_path / "app.log") as server:
            app = App(page, artefacts, "loop")
            app.goto(server.url)
            app.add_class("spot")  # the engineer knows the line now makes spots
            app.status("Added class spot")

            # The line's queue: the least certain part first, the model's class on it.
            _load_queue(app, line, daemon.url)
            thumbs = page.locator("#queue-gallery .thumbnail-item")
            expect(thumbs).to_have_count(2)
            expect(thumbs.first).to_contain_text(f"{proposed} · {score}")
            # A second opinion: the heavy model (more shots) disagrees on that part.
            _load_queue(app, line, daemon.url, str(heavy))
            expect(page.locator("#queue-summary")).to_contain_text("heavy model disagrees")
            expect(thumbs.first).to_contain_text(f"⚠ {proposed} · {score}")
            thumbs.first.click()
            expect(page.locator("#queue-proposal")).to_contain_text(f"{spot}.png")
            expect(page.locator("#queue-proposal")).to_contain_text(f"class {proposed}")
            expect(page.locator(f"#queue-label input[value={proposed}]")).to_be_checked()
            expect(page.locator("#queue-opinion")).to_contain_text(
                "The models disagree", timeout=SLOW_MS
            )
            expect(page.locator("#queue-heavy-picture img")).to_have_count(1)
            app.idle()
            app.shot("queue-proposal-and-second-opinion")

            # The engineer corrects the class: one click, then confirm.
            page.locator("#queue-label label", has_text="spot").first.click()
            page.locator("#queue-confirm").click()
            app.status("as spot with" if proposed != "good" else "as spot")  # a region kept, if any
            expect(page.locator("#queue-summary")).to_contain_text("1 part(s) to review")
            app.shot("corrected")

            app.tab("fit")
            page.locator("#fit").click()
            app.status("Fitted in", timeout=SLOW_MS)
            app.idle(SLOW_MS)
            app.shot("refitted")
            app.tab("export")
            page.locator("#export-target label", has_text="ONNX").click()
            page.locator("#export").click()
            app.status("Exported onnx-fp32.zip", timeout=SLOW_MS)
            app.shot("exported")
            app.no_traceback()
            assert app.error_badges() == []

        # The gate: the corrected part is a fix; whatever else flipped is listed too.
        entry, report = loop.gate_and_promote(
            line, line.project / "exports" / "onnx-fp32", accept="loop test: flips reviewed"
        )
        fixed = [f for f in report.flips if f.truth == "spot"]
        assert len(fixed) == 1, report.summary()
        assert fixed[0].effect == "fix" and (fixed[0].old.label, fixed[0].new.label) == (
            proposed, "spot"
        )
        page.goto((tmp_path / "registry" / "versions" / entry.id / "gate" / "index.html").as_uri())
        expect(page.locator("body")).to_contain_text(fixed[0].image)
        app.shot("gate")

        # The daemon follows current; the same part now gets the corrected class.
        loop.wait_for_bundle(daemon, entry.id)
        again = loop.post(daemon.url, line.files[spot])
        assert again["bundle_id"] == entry.id != v1
        assert (again["verdict"], again["label"]) == ("defect", "spot"), again
    finally:
        daemon.stop()
