"""The labelling app in a real headless browser: label, fit, review, threshold, export.

One app server (``inspect app`` in a subprocess, on a free 127.0.0.1 port) serves every
test; each test opens its own project from the page's project box, which also checks
that several projects can be open. Screenshots of each step are kept in
``tests/artifacts/app_browser/`` (or ``$DEFECTKIT_ARTIFACTS/app_browser/``), replaced
by each run; the path is printed (``pytest -s`` shows it).

Needs Playwright for Python and Debian's Chromium (``/usr/bin/chromium``); without
them the module skips with a message saying what to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Debian's Chromium; Playwright's own browser download is not used.
CHROMIUM = Path(os.environ.get("DEFECTKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found: apt-get install -y chromium, or set DEFECTKIT_CHROMIUM "
        "(browser tests skipped)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install playwright"
)
expect = sync_api.expect

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
#: Fit and export run the real embedded backbone on 2 shared cores: be patient.
SLOW_MS = 150_000
STEP_MS = 30_000
IDLE_JS = """(scope) => ![...document.querySelectorAll(scope + ' [data-testid=status-tracker]')]
    .some(e => !e.classList.contains('hide'))"""
BUSY_JS = """() => [...document.querySelectorAll('[data-testid=status-tracker]')]
    .filter(e => !e.classList.contains('hide'))
    .map(e => ((e.closest('[id]') || {}).id || '?') + ': ' + e.innerText.replace(/\\s+/g, ' '))"""
#: Data rows of the review table (Gradio's Dataframe renders a virtual grid).
REVIEW_ROWS = "#review-table [role=row][data-index]"


# --------------------------------------------------------------------------- fixtures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artefacts() -> Path:
    """The screenshot folder, emptied at the start of each run (so it holds one run)."""
    folder = (
        Path(os.environ.get("DEFECTKIT_ARTIFACTS", REPO / "tests" / "artifacts")) / "app_browser"
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n[app browser test] screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``inspect app`` on a free port; yields (url, folder for projects)."""
    work = tmp_path_factory.mktemp("app")
    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "defectkit", "app", "--project", str(work / "first"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{_tail(work / 'server.log')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the app did not answer on {url} in 120 s:\n{_tail(work / 'server.log')}")
        time.sleep(0.5)
    yield url, work
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    print(f"[app browser test] server log: {work / 'server.log'}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(server[0])
    expect(page.locator("#status")).to_contain_text("Project", timeout=60_000)
    yield page
    context.close()


# --------------------------------------------------------------------------- page helpers
class App:
    """Actions on the page by ``elem_id``, waiting for the status line each time."""

    def __init__(self, page, artefacts: Path, prefix: str) -> None:
        self.page, self.artefacts, self.prefix, self.step = page, artefacts, prefix, 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.artefacts / f"{self.prefix}-{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def idle(self, timeout: int = STEP_MS, scope: str = "") -> None:
        """Wait until no component (in ``scope``) shows Gradio's pending tracker, twice 0.4 s apart.

        Twice: an ImageEditor keeps its tracker while it loads the image it was sent,
        which can start just after the event's other outputs arrived.
        """
        deadline = time.monotonic() + timeout / 1000
        while time.monotonic() < deadline:
            if self.page.evaluate(IDLE_JS, scope):
                self.page.wait_for_timeout(400)
                if self.page.evaluate(IDLE_JS, scope):
                    return
            self.page.wait_for_timeout(200)
        self.shot("busy")
        raise AssertionError(f"the page stayed busy: {self.page.evaluate(BUSY_JS)}")

    def status(self, text: str, timeout: int = STEP_MS) -> None:
        expect(self.page.locator("#status")).to_contain_text(text, timeout=timeout)

    def open_project(self, folder: Path) -> None:
        box = self.page.locator("#project-path input")
        box.fill(str(folder))
        box.press("Enter")
        self.page.locator("#open-project").click()
        self.status(f"Project {folder}")

    def tab(self, name: str) -> None:
        self.page.locator(f"#tab-{name}-button").click()

    def add_class(self, name: str) -> None:
        self.page.locator("#class-name textarea, #class-name input").first.fill(name)
        self.page.locator("#add-class").click()

    def upload(self, files: list[Path]) -> None:
        self.page.locator("#upload input[type=file]").set_input_files([str(f) for f in files])

    def select_image(self, name: str) -> None:
        """Click the gallery thumbnail whose caption starts with ``name``."""
        self.page.locator("#gallery .thumbnail-item", has_text=name).first.click()
        expect(self.page.locator("#selected-image")).to_contain_text(name)
        # The editor is rendered afresh for the image, loads it, and syncs it back.
        expect(self.page.locator("#mask-editor")).to_contain_text(f"region of {name}")
        self.idle(SLOW_MS, "#mask-editor")

    def label(self, name: str, label: str, note: str = "", *, select: bool = True) -> None:
        if select:  # re-selecting reloads the editor, dropping unsaved paint
            self.select_image(name)
        self.page.locator("#label-choice label", has_text=label).first.click()
        if note:
            self.page.locator("#note textarea").fill(note)
        self.page.locator("#save-label").click()
        self.status(f"Saved {name}: {label}")

    def review_rows(self) -> dict[str, list[str]]:
        """The review table as {image name: [verdict, class, score, caption]}."""
        rows = {}
        for row in self.page.locator(REVIEW_ROWS).all():
            cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
            if cells and cells[0]:
                rows[cells[0]] = cells[1:]
        return rows

    def set_threshold(self, value: float) -> None:
        box = self.page.locator("#threshold input[type=number]")
        box.fill(f"{value:.3f}")
        box.press("Tab")  # the slider's number box reports on blur
        self.status(f"Threshold {value:.3f}")


def _synthetic_files(folder: Path) -> dict[str, Path]:
    """Ten 128 px fabric images with known defects: good_000..003, scratch_000..002, spot_000..002."""
    from defectkit.datasets import make_synthetic

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    samples = make_synthetic(n_good=4, defects={"scratch": 3, "spot": 3}, size=(128, 128), seed=0)
    for sample in samples:
        path = folder / f"{sample.key}.png"
        Image.fromarray(sample.load_image()).save(path)
        files[sample.key] = path
    return files


def _paint(page, selector: str) -> None:
    """Drag the editor's brush across the middle of its canvas."""
    page.locator(f"{selector} button[aria-label='Brush']").first.click()
    canvases = page.locator(f"{selector} canvas").all()
    box = max((c.bounding_box() for c in canvases), key=lambda b: b["width"] * b["height"])
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.2, y + box["height"] * 0.1, steps=8)
    page.mouse.up()
    page.wait_for_timeout(800)  # the editor sends its layers to the server after a stroke


def _no_traceback(page) -> None:
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and 'File "' not in text, "a stack trace reached the page"


# --------------------------------------------------------------------------- tests
def test_label_fit_review_threshold_export(page, server, artefacts, tmp_path):
    """The QC engineer's whole flow, ending with a bundle the runtime can load."""
    app = App(page, artefacts, "flow")
    files = _synthetic_files(tmp_path / "images")
    app.open_project(server[1] / "flow-project")
    app.shot("empty-project")

    app.add_class("scratch")
    app.status("Added class scratch")
    app.add_class("spot")
    app.status("Added class spot")
    app.upload(list(files.values()))
    app.status("added 10 images")
    expect(page.locator("#gallery .thumbnail-item")).to_have_count(10)
    app.shot("uploaded")

    shots = {"good_000": "good", "good_001": "good", "scratch_000": "scratch",
             "scratch_001": "scratch", "spot_000": "spot", "spot_001": "spot"}  # fmt: skip
    for key, label in shots.items():
        painted = key == "scratch_000"
        if painted:
            app.select_image(f"{key}.png")
            _paint(page, "#mask-editor")
            app.shot("painted-mask")
        note = "hairline, from the guide rail" if key == "scratch_001" else ""
        app.label(f"{key}.png", label, note=note, select=not painted)
        if painted:
            app.status(f"Saved {key}.png: scratch with a mask")
    expect(page.locator("#shot-counts")).to_contain_text("scratch: 2 of 2")
    expect(page.locator("#shot-counts")).to_contain_text("spot: 2 of 2")
    app.shot("labelled")

    app.tab("fit")
    expect(page.locator("#backbone input")).to_have_value("efficientnet_lite0")
    page.locator("#fit").click()
    app.status("Fitted in", timeout=SLOW_MS)
    expect(page.locator("#fit-summary")).to_contain_text("efficientnet_lite0")
    expect(page.locator(REVIEW_ROWS)).to_have_count(4)
    app.shot("fitted")

    rows = app.review_rows()
    verdict, label, score, caption = rows["scratch_002.png"]
    assert verdict == "defect", rows  # a known scratch, not among the shots
    assert rows["good_002.png"][0] == "good", rows
    assert caption, "every result is described, so a defect has a caption"
    page.locator("#review-gallery .thumbnail-item", has_text="scratch_002").first.click()
    expect(page.locator("#review-details")).to_contain_text("DEFECT")
    expect(page.locator("#review-overlay img")).to_be_visible()
    expect(page.locator("#review-mask img")).to_be_visible()
    app.shot("review-details")

    # One click turns a reviewed image into a labelled shot and refits.
    page.locator("#review-gallery .thumbnail-item", has_text="good_002").first.click()
    expect(page.locator("#review-details")).to_contain_text("good_002.png")
    app.idle()
    page.locator("#accept-label input").click()
    page.get_by_role("option", name="good", exact=True).click()
    page.locator("#accept-shot").click()
    app.status("good_002.png is now a good shot; refitted", timeout=SLOW_MS)
    expect(page.locator(REVIEW_ROWS)).to_have_count(3)
    expect(page.locator("#fit-summary")).to_contain_text("good 3")
    app.shot("accepted-shot-refitted")

    verdict, label, score, caption = app.review_rows()["scratch_002.png"]
    assert verdict == "defect"
    scratch_score = float(score)
    page.locator("#review-gallery .thumbnail-item", has_text="scratch_002").first.click()
    expect(page.locator("#review-details")).to_contain_text("DEFECT")
    app.set_threshold(scratch_score + 0.05)  # just above the scratch: it turns good
    expect(page.locator("#review-details")).to_contain_text("good")
    assert app.review_rows()["scratch_002.png"][0] == "good"
    app.shot("threshold-above-scratch")
    app.set_threshold(scratch_score - 0.05)
    assert app.review_rows()["scratch_002.png"][0] == "defect"
    app.shot("threshold-below-scratch")

    app.tab("export")
    page.locator("#export-target label", has_text="ONNX").click()
    page.locator("#export-precision label", has_text="fp32").click()
    page.locator("#export").click()
    app.status("Exported onnx-fp32.zip", timeout=SLOW_MS)
    expect(page.locator("#export-summary")).to_contain_text("Self-check passed")
    app.shot("exported")
    with page.expect_download() as download_info:
        page.locator("#export-download a").first.click()
    archive = tmp_path / "bundle.zip"
    download_info.value.save_as(archive)
    _no_traceback(page)

    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unzipped")
    (bundle_dir,) = [p for p in (tmp_path / "unzipped").iterdir() if p.is_dir()]
    from defectkit.exporters.runtime import load_bundle

    bundle = load_bundle(bundle_dir)
    image = np.asarray(Image.open(files["scratch_002"]).convert("RGB"))
    (result,) = bundle.inspect([image])
    assert result.verdict == "defect"
    assert abs(bundle.thresholds.image - (scratch_score - 0.05)) < 2e-3  # the slider's threshold


def test_bad_input_shows_messages_not_tracebacks(page, server, artefacts, tmp_path):
    """Non-images, corrupt images, bad class names, a class without shots, export before fit."""
    app = App(page, artefacts, "bad-input")
    files = _synthetic_files(tmp_path / "images")
    app.open_project(server[1] / "bad-input-project")

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(files["good_000"].read_bytes()[:200])
    app.upload([text_file, corrupt, files["good_000"], files["good_001"]])
    app.status("added 2 images")
    app.status("notes.txt: not an image")
    app.status("broken.png: cannot decode the image")
    expect(page.locator("#gallery .thumbnail-item")).to_have_count(2)
    app.shot("bad-uploads")

    app.add_class("good")
    app.status("reserved")
    app.add_class("scratch")
    app.status("Added class scratch")
    app.add_class("dent")
    app.status("Added class dent")
    page.locator("#class-name textarea, #class-name input").first.fill("dent/big")
    page.locator("#rename-class").click()
    app.status("not allowed")  # a class name becomes a folder name: no slashes
    page.locator("#class-name textarea, #class-name input").first.fill("big_dent")
    page.locator("#rename-class").click()
    app.status("Renamed dent to big_dent")
    expect(page.locator("#label-choice")).to_contain_text("big_dent")
    page.locator("#delete-class").click()
    app.status("Deleted class big_dent")
    expect(page.locator("#label-choice")).not_to_contain_text("big_dent")
    app.label("good_000.png", "good")

    app.tab("export")
    page.locator("#export").click()
    app.status("nothing is fitted")
    app.shot("export-before-fit")

    app.tab("fit")
    page.locator("#fit").click()
    app.status("'scratch' has no labelled shots", timeout=SLOW_MS)
    app.shot("fit-class-without-shots")
    expect(page.locator("#fit-summary")).to_contain_text("Not fitted yet")
    _no_traceback(page)

    # The project is consistent on disk: reopening it in a fresh page shows the same state.
    page.reload()
    app.status("Project")  # the page's own load event opens the default project first
    app.idle()
    app.open_project(server[1] / "bad-input-project")
    expect(page.locator("#gallery .thumbnail-item")).to_have_count(2)
    expect(page.locator("#shot-counts")).to_contain_text("good: 1 of 2")
    expect(page.locator("#shot-counts")).to_contain_text("scratch: 0 of 2")
