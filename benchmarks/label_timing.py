"""Labelling an escalated part with and without the model's pre-filled proposal.

Issue 19: "pre-annotation by the model made labelling about 4x faster". Here the same
escalated parts are labelled twice in the app (``inspect app`` in a subprocess,
headless Chromium through Playwright), by a script acting as the engineer:

- **with the proposal** (the "4 · Review queue" tab, parts from a daemon's review
  store): select the part; if the model's class is wrong click the right one; where the
  model proposed no region for a defect, pick the queue's brush and paint one stroke;
  confirm. A proposed region is kept as the mask (one tick box, on by default).
- **without it** (the "1 · Label" tab, the same images uploaded unlabelled): select the
  image; for a defect pick the brush and paint one stroke over the defect; click the
  class; save.

Counted: clicks and brush strokes (what the engineer does), and the seconds from the
first click until the app says the part was added or saved. The script does not hesitate,
so those seconds are the app's own response time, not a person's; a person's time is
estimated from the counts with the keystroke-level model (Card, Moran & Newell 1980:
1.1 s to point at a target, 0.2 s to press and release, 1.2 s of thought before each
decision, a stroke as two points) and written beside them, said as an estimate.

The line: :mod:`defectkit.testing.loop` (a bundle fitted on 4 good images and 3
scratches, no spots, a band of +-60 % around its threshold so most parts escalate),
synthetic 128 x 128 images (seed 0), nothing downloaded.

    python benchmarks/label_timing.py       # writes benchmarks/results/label_timing.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS, header, table  # noqa: E402

OUT = RESULTS / "label_timing.md"
#: Parts the line sends; those inside the band are queued (and labelled both ways).
PARTS = ("spot_000", "spot_001", "spot_002", "spot_003", "scratch_003", "good_004", "good_005")
BAND = 0.6
#: Keystroke-level model operators (s): point, press+release, mental preparation.
KLM_POINT, KLM_CLICK, KLM_THINK = 1.1, 0.2, 1.2


@dataclass
class Trial:
    part: str
    truth: str
    proposal: str  # the class the form showed pre-filled ("" without a proposal)
    clicks: int
    strokes: int
    seconds: float

    @property
    def decisions(self) -> int:
        """Choices the engineer makes: the class, and the region when painting."""
        return 1 + self.strokes

    @property
    def klm_seconds(self) -> float:
        return (self.clicks * (KLM_POINT + KLM_CLICK) + self.strokes * 2 * KLM_POINT
                + self.decisions * KLM_THINK)  # fmt: skip


def truth_of(part: str) -> str:
    return part.split("_")[0]


def with_proposal(app, url: str, token: str, regions: dict[str, bool]) -> list[Trial]:
    """Each queued part through the Review queue tab, the first of the queue each time.

    ``regions``: whether the line proposed a defect region for each part. A defect whose
    proposal had none (the model called it good) gets its region painted with the
    queue's own brush before the confirm; the brush button and the stroke are counted.
    """
    from defectkit.testing.app_browser import SLOW_MS

    page = app.page
    app.tab("queue")
    page.locator("#queue-source textarea, #queue-source input").first.fill(url)
    page.locator("#queue-token input").fill(token)
    page.locator("#queue-load").click()
    app.status("part(s) to review", timeout=SLOW_MS)
    app.idle()
    trials = []
    for n in range(len(regions)):
        if n == 0:
            app.shot("queue-before")
        thumbs = page.locator("#queue-gallery .thumbnail-item")
        started = time.perf_counter()
        thumbs.first.click()
        clicks = 1
        proposal_md = page.locator("#queue-proposal")
        app.expect(proposal_md).to_contain_text(".png from line3")
        app.idle()
        name = proposal_md.locator("strong").first.inner_text().removesuffix(".png")
        checked = page.locator("#queue-label input:checked")
        proposal = checked.get_attribute("value") if checked.count() else ""
        truth = truth_of(name)
        strokes = 0
        if truth != "good" and not regions[name]:
            app.idle(SLOW_MS, "#queue-editor")  # the part is in the brush
            app.paint("#queue-editor")  # the brush button and one stroke
            clicks, strokes = clicks + 1, 1
        if proposal != truth:
            page.locator("#queue-label label", has_text=truth).first.click()
            clicks += 1
        page.locator("#queue-confirm").click()
        clicks += 1
        app.status(f"as {truth}", timeout=SLOW_MS)
        if truth != "good":
            app.status(f"as {truth} with a mask")
        seconds = time.perf_counter() - started
        app.idle()
        trials.append(Trial(name, truth, proposal, clicks, strokes, seconds))
    return trials


def without_proposal(app, queued: list[str]) -> list[Trial]:
    """The same parts, uploaded unlabelled, labelled in the Label tab (a mask painted
    for a defect)."""
    from defectkit.testing.app_browser import SLOW_MS

    page = app.page
    app.tab("label")
    trials = []
    for name in queued:
        truth = truth_of(name)
        started = time.perf_counter()
        app.select_image(f"{name}.png")
        clicks, strokes = 1, 0
        if truth != "good":
            app.paint()  # the brush button and one stroke
            clicks, strokes = clicks + 1, 1
        page.locator("#label-choice label", has_text=truth).first.click()
        page.locator("#save-label").click()
        clicks += 2
        app.status(f"Saved {name}.png: {truth}", timeout=SLOW_MS)
        seconds = time.perf_counter() - started
        trials.append(Trial(name, truth, "", clicks, strokes, seconds))
    app.shot("label-tab-after")
    return trials


def run(work: Path, shots: Path) -> tuple[list[Trial], list[Trial], dict[str, bool]]:
    from playwright.sync_api import sync_playwright

    from defectkit.apps.labelling.importing import add_files
    from defectkit.apps.labelling.project import Project
    from defectkit.testing import loop
    from defectkit.testing.app_browser import STEP_MS, VIEWPORT, App, AppServer, launch_chromium

    line = loop.stage_line(work / "line", band=BAND)
    # The "without" project: the same labelled shots, the queued parts as plain uploads.
    plain = work / "plain-project"
    shutil.copytree(line.project, plain)
    daemon = loop.serve(line)
    try:
        answers = {p: loop.post(daemon.url, line.files[p]) for p in PARTS}
        queued = [p for p, a in answers.items() if a.get("review")]
        regions = {p: any("box" in d for d in answers[p].get("defects", [])) for p in queued}
        add_files(Project.open(plain), [line.files[p] for p in queued])
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.set_default_timeout(STEP_MS)
                with AppServer(line.project, work / "app.log") as server:
                    app = App(page, shots, "with")
                    app.goto(server.url)
                    app.add_class("spot")
                    app.status("Added class spot")
                    with_trials = with_proposal(app, daemon.url, loop.TOKEN, regions)
                with AppServer(plain, work / "app-plain.log") as server:
                    app = App(page, shots, "without")
                    app.goto(server.url)
                    app.add_class("spot")
                    app.status("Added class spot")
                    without_trials = without_proposal(app, queued)
            finally:
                browser.close()
    finally:
        daemon.stop()
    return with_trials, without_trials, regions


def _summary(name: str, trials: list[Trial]) -> list:
    n = len(trials)
    if not n:
        return [name, 0, "", "", "", "", ""]
    return [
        name, n, f"{sum(t.clicks for t in trials) / n:.1f}",
        f"{sum(t.strokes for t in trials) / n:.1f}",
        f"{statistics.median(t.seconds for t in trials):.1f}",
        f"{max(t.seconds for t in trials):.1f}",
        f"{statistics.mean(t.klm_seconds for t in trials):.1f}",
    ]  # fmt: skip


def write_report(out: Path, with_trials, without_trials, regions, loads) -> None:
    plain = {t.part: t for t in without_trials}
    # A proposal helps where it carries what the engineer would otherwise give: the
    # region of a defect, or the verdict of a good part. Split by that.
    helped = [t for t in with_trials if t.truth == "good" or regions[t.part]]
    detour = [t for t in with_trials if t not in helped]
    rows = [
        _summary("with the proposal, all parts", with_trials),
        _summary("without (Label tab), all parts", without_trials),
        _summary("with, the model proposed a region (or the part is good)", helped),
        _summary("without, the same parts", [plain[t.part] for t in helped]),
        _summary("with, a defect the model called good (region painted in the queue)", detour),
        _summary("without, the same parts", [plain[t.part] for t in detour]),
    ]
    per_part = [
        [w.part, w.truth, w.proposal or "(none)", "yes" if regions[w.part] else "no", w.clicks,
         w.strokes, f"{w.seconds:.1f}", plain[w.part].clicks, plain[w.part].strokes,
         f"{plain[w.part].seconds:.1f}"]
        for w in with_trials
    ]  # fmt: skip
    right = sum(t.proposal == t.truth for t in with_trials)
    # fmt: off
    text = header("Labelling an escalated part: with and without the pre-filled proposal") + (
        f"\nLoad average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f} on "
        f"{os.cpu_count()} cores, shared with other jobs.  \n"
        f"Parts: {len(with_trials)} escalated by the line bundle (band +-{BAND:.0%}), synthetic "
        f"128 x 128, seed 0; the model's class was right on {right} of {len(with_trials)} "
        "(the line bundle knows no spots yet, so it calls spots scratches or good).\n\n"
        f"**Headline: where the proposal carries the region (or the part is good), a part "
        f"takes {rows[2][2]} clicks and {rows[2][3]} strokes against {rows[3][2]} clicks and "
        f"{rows[3][3]} strokes, a person's time estimated at {rows[2][6]} s against "
        f"{rows[3][6]} s. Where the model called a defect good there is no region to keep; "
        f"the engineer paints it with the queue's own brush: {rows[4][2]} clicks and "
        f"{rows[4][3]} strokes against {rows[5][2]} and {rows[5][3]}, {rows[4][6]} s against "
        f"{rows[5][6]} s. Over all {len(with_trials)} parts: {rows[0][6]} s against "
        f"{rows[1][6]} s.** The measured seconds are the app's response to a script that "
        "never hesitates, not a person's time.\n\n"
        + table(["path", "parts", "clicks / part", "strokes / part", "median s (app)",
                 "max s (app)", "person s (KLM estimate)"], rows)
        + "\n\nPer part, in the queue's order (least certain first; the Label tab took the "
        "same parts):\n\n"
        + table(["part", "truth", "proposal", "region proposed", "clicks with", "strokes with",
                 "s with", "clicks without", "strokes without", "s without"], per_part)
        + "\n\nWith the proposal the mask is the model's defect region, kept as it is (its "
        "quality is not judged here), or one stroke in the queue's brush where it proposed "
        "none. Without the proposal one stroke stands for the region, "
        "which a careful engineer paints with more. The person estimate counts per click a "
        f"point and a press ({KLM_POINT + KLM_CLICK:.1f} s), per stroke two points, and "
        f"{KLM_THINK} s of thought per decision (the class; the region).\n"
    )
    # fmt: on
    out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--shots", type=Path, help="screenshot folder (default: WORK/shots)")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown file to write")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="defectkit-label-bench-"))
    shots = args.shots or work / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    start = os.getloadavg()[0]
    with_trials, without_trials, regions = run(work, shots)
    write_report(args.out, with_trials, without_trials, regions, (start, os.getloadavg()[0]))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
