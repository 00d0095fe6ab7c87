"""The labelling app's waits: fit time on spindle-sized images, and click-to-render time.

Two measurements, as a QC engineer meets them (issue 18):

- **Fit**: a project of 20 spindle-sized images (1130 x 460, 10 good and 10 pitting,
  synthetic metal, seed 0) with 2 shots per class labelled; ``Project.fit`` is what
  the app's Fit button runs and its wall time is what the status line reports. The
  first fit in a process includes loading the backbone (the first Fit after ``inspect
  app`` starts), later ones do not. Then the background review of the 16 unlabelled
  images, and the model's own breakdown of one fit of the same shots
  (``Inspector.fit``'s report). Target: under 10 s on 2 cores.
- **Details view**: the app (``inspect app``, a subprocess) on a fitted project with
  1130 x 460, 460 x 1130 and 6000 x 4000 unlabelled images, in headless Chromium;
  each click on a heatmap is timed until the page shows that image's details and its
  heatmap (loaded). Images are clicked in turn, so every click renders a new image.

    python benchmarks/app_latency.py              # writes benchmarks/results/app_latency.md
    python benchmarks/app_latency.py --no-browser # the fit only

The images are made here, never downloaded. The machine is shared: the load average at
start and end is written beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS, header, table  # noqa: E402

OUT = RESULTS / "app_latency.md"
TARGET_FIT_S = 10.0
#: The browser test's ceiling (tests/integration/test_app_browser_large.py).
DETAILS_BUDGET_S = 5.0
SHOTS = {"good_000": "good", "good_001": "good", "pitting_000": "pitting", "pitting_001": "pitting"}


def labelled_project(root: Path, files: dict[str, Path]):
    """A project of ``files`` with the classes of :data:`SHOTS` and those shots labelled."""
    from defectkit.apps.labelling.importing import add_files
    from defectkit.apps.labelling.project import Project

    project = Project.open(root)
    add_files(project, files.values())
    project.add_class("pitting")
    ids = {Path(r.name).stem: r.id for r in project.images}
    for key, label in SHOTS.items():
        project.set_label(ids[key], label)
    return project


def measure_fit(work: Path, fits: int) -> dict:
    """Wall times of ``fits`` fits of the 20-image spindle project, its background review,
    and the model's breakdown of one fit."""
    from defectkit.apps.labelling.reviewer import Reviewer
    from defectkit.inspect.config import InspectorConfig
    from defectkit.inspect.inspector import Inspector
    from defectkit.testing.labelling import write_spindles

    files = write_spindles(work / "spindles", n_good=10, n_pitting=10, seed=0)
    project = labelled_project(work / "fit-project", files)
    walls, cpus = [], []
    for _ in range(fits):
        cpu = time.process_time()
        walls.append(project.fit().seconds)
        cpus.append(time.process_time() - cpu)
        print(f"fit: {walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU", file=sys.stderr, flush=True)
    reviewer = Reviewer(project)
    started = time.perf_counter()
    reviewer.start()
    progress = reviewer.wait(600)
    review = time.perf_counter() - started
    inspector = Inspector(InspectorConfig(backbone=project.backbone))
    from defectkit.fewshot.support import SupportSet

    report = inspector.fit(SupportSet.from_samples(project.samples(), classes=project.classes))
    return {
        "walls": walls,
        "cpus": cpus,
        "review": review,
        "reviewed": progress.done,
        "breakdown": report.seconds,
        "bank": (report.bank_patches, report.bank_size),
        "config": InspectorConfig(backbone=project.backbone).to_dict(),
    }


def measure_clicks(work: Path, clicks: int) -> dict[str, list[float]]:
    """Click-to-render seconds per image, ``clicks`` times each, in headless Chromium."""
    from playwright.sync_api import expect, sync_playwright

    from defectkit.testing.app_browser import VIEWPORT, App, AppServer, launch_chromium
    from defectkit.testing.labelling import write_large, write_spindles

    files = write_spindles(work / "photos", n_good=3, n_pitting=3, seed=0)
    tall = write_spindles(work / "tall", n_good=1, n_pitting=0, size=(1130, 460), seed=1)
    files["tall_460x1130"] = tall["good_000"].rename(work / "tall" / "tall_460x1130.png")
    files["large_6000x4000"] = write_large(work / "large" / "large_6000x4000.jpg")
    project = labelled_project(work / "click-project", files)
    project.fit()
    names = {
        "1130 x 460": "good_002.png",
        "460 x 1130": "tall_460x1130.png",
        "6000 x 4000": "large_6000x4000.jpg",
    }
    times: dict[str, list[float]] = {kind: [] for kind in names}
    with AppServer(project.root, work / "server.log") as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        app = App(page, work, "bench")
        app.goto(server.url)
        app.tab("fit")
        expect(page.locator("#review-progress")).to_contain_text("Reviewed", timeout=300_000)
        app.open_details("pitting_002.png")  # warm-up: the page's first picture
        for _ in range(clicks):
            for kind, name in names.items():
                times[kind].append(app.open_details(name))
        app.shot("details")
        browser.close()
    return times


def versions() -> str:
    import gradio
    import torch

    return f"gradio {gradio.__version__}, torch {torch.__version__}"


def write_report(out: Path, *, fit: dict | None, clicks: dict | None, loads) -> None:
    lines = [header("Labelling app: fit time and click-to-render time")]
    lines.append(
        f"Load average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f} on "
        f"{os.cpu_count()} cores, shared with other jobs: absolute times carry their load.  \n"
        f"Versions: {versions()}. Images: synthetic, made by the script (seed 0), never downloaded.\n"
    )
    if fit is not None:
        walls, cpus = fit["walls"], fit["cpus"]
        warm = walls[1:] or walls
        warm_cpu = cpus[1:] or cpus
        rows = [
            ["first fit in the process (backbone loaded)", f"{walls[0]:.1f}", "", "", f"{cpus[0]:.1f}"],
            [
                f"later fits (median of {len(warm)})",
                f"{statistics.median(warm):.1f}",
                f"{min(warm):.1f}",
                f"{max(warm):.1f}",
                f"{statistics.median(warm_cpu):.1f}",
            ],
            [
                f"background review of the {fit['reviewed']} unlabelled images",
                f"{fit['review']:.1f}",
                "",
                "",
                "",
            ],
        ]
        best = statistics.median(warm)
        verdict = "meets" if best < TARGET_FIT_S else "misses"
        lines += [
            "## Fit: 2 shots per class, 20 spindle-sized images (1130 x 460)\n",
            f"What the Fit button runs (`Project.fit`, the app's default configuration: "
            f"`{fit['config']['backbone']}`); wall time, as the status line reports it, and the "
            "process's CPU time (all its threads: the fit keeps a core busy, so on two idle "
            "cores its wall time would be about this or less). "
            f"**Today the later fits take {best:.1f} s: the app {verdict} the {TARGET_FIT_S:.0f} s "
            "target at this load.** The fit itself is the model's (`inspect/`, `fewshot/`); its "
            "breakdown below says where the time goes. Before this branch's coreset change "
            "(two threads in its loop) the later fits took 41.1 s at load 8-9 and 27.5 s at "
            "load 1-7, the coreset alone 17-19 s.\n",
            table(["", "wall (s)", "min (s)", "max (s)", "CPU (s)"], rows),
            "",
            "The model's breakdown of one more fit of the same shots (`Inspector.fit` report, s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in fit["breakdown"].items())
            + f"; the memory bank is chosen from {fit['bank'][0]} patches down to {fit['bank'][1]}.\n",
        ]
    if clicks is not None:
        rows = []
        for kind, values in clicks.items():
            ordered = sorted(values)
            p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
            rows.append(
                [
                    kind,
                    len(values),
                    f"{statistics.median(values):.2f}",
                    f"{p90:.2f}",
                    f"{max(values):.2f}",
                ]
            )
        lines += [
            "## Details view: click on a heatmap until its details and heatmap are on screen\n",
            "`inspect app` in a subprocess, headless Chromium (Playwright), viewport 1500 x 1100; "
            "a fitted project with 4 spindle shots and 4 unlabelled images. Each click "
            "shows another image than the one before. The browser test "
            f"(`tests/integration/test_app_browser_large.py`) allows {DETAILS_BUDGET_S:.0f} s; "
            "before issue 18 (main at 67bf35b, this harness, under a similar load) the 6000 x 4000 "
            "image took 22.8 s and 18.8 s, the 460 x 1130 one 1.9 s, a 1130 x 460 one 1.4 s.\n",
            table(["image", "clicks", "median (s)", "p90 (s)", "max (s)"], rows),
            "",
        ]
    out.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fits", type=int, default=3, help="fits to time (default 3; the first loads the backbone)"
    )
    parser.add_argument("--clicks", type=int, default=7, help="clicks per image (default 7)")
    parser.add_argument("--no-browser", action="store_true", help="time the fit only")
    parser.add_argument("--no-fit", action="store_true", help="time the clicks only")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown file to write")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="defectkit-app-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    start_load = os.getloadavg()[0]
    fit = None if args.no_fit else measure_fit(work, args.fits)
    clicks = None if args.no_browser else measure_clicks(work, args.clicks)
    write_report(args.out, fit=fit, clicks=clicks, loads=(start_load, os.getloadavg()[0]))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
