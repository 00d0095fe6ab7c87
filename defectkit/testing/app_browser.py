"""Drive the labelling app in headless Chromium: for the browser tests and the latency benchmark.

:class:`AppServer` runs ``inspect app`` in a subprocess on a free 127.0.0.1 port (and
restarts it on the same project, as an engineer restarting the app would);
:func:`launch_chromium` starts Debian's Chromium through Playwright (its own browser
download is never used); :class:`App` acts on the page by ``elem_id`` and waits for
what the page says, never for fixed times.

Playwright is imported inside the functions that need it, so importing this module
costs nothing where Playwright is missing (callers skip with :data:`MISSING`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from defectkit.testing.processes import REPO, subprocess_env

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
#: Fit and export run the real embedded backbone on 2 shared cores: be patient.
SLOW_MS = 150_000
STEP_MS = 30_000
VIEWPORT = {"width": 1500, "height": 1100}
IDLE_JS = """(scope) => ![...document.querySelectorAll(scope + ' [data-testid=status-tracker]')]
    .some(e => !e.classList.contains('hide'))"""
BUSY_JS = """() => [...document.querySelectorAll('[data-testid=status-tracker]')]
    .filter(e => !e.classList.contains('hide'))
    .map(e => ((e.closest('[id]') || {}).id || '?') + ': ' + e.innerText.replace(/\\s+/g, ' '))"""
#: Components showing Gradio's red "Error" badge (a handler failed outside our guard).
ERROR_BADGES_JS = """() => [...document.querySelectorAll('[data-testid=status-tracker]')]
    .filter(e => /\\bError\\b/.test(e.innerText))
    .map(e => (e.closest('[id]') || {}).id || '?')"""
#: Data rows of the review table (Gradio's Dataframe renders a virtual grid).
REVIEW_ROWS = "#review-table [role=row][data-index]"
#: The details view shows ``name``: its text, and a heatmap image other than ``before``, loaded.
DETAILS_SHOWN_JS = """([name, before]) => {
    const md = document.querySelector('#review-details');
    const img = document.querySelector('#review-overlay img');
    return !!md && md.innerText.includes(name) && !!img && img.complete
        && img.naturalWidth > 0 && img.src !== before;
}"""


def missing() -> str | None:
    """Why the browser cannot run here (a sentence saying what to install), or None."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} not found: apt-get install -y chromium, or set DEFECTKIT_CHROMIUM "
            "(browser tests skipped)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed: pip install playwright (browser tests skipped)"
    return None


def require_browser():
    """Skip the calling test module when the browser cannot run; else Playwright's ``expect``."""
    import pytest

    reason = missing()
    if reason:
        pytest.skip(reason, allow_module_level=True)
    from playwright.sync_api import expect

    return expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class AppServer:
    """``inspect app --project PROJECT`` on 127.0.0.1; :meth:`restart` keeps the project.

    Args:
        project: the project folder the app opens first.
        log: the server's output (appended across restarts).
    """

    def __init__(self, project: Path, log: Path) -> None:
        self.project, self.log = Path(project), Path(log)
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 120.0) -> AppServer:
        """Start the server and wait until it answers; raises RuntimeError with its log."""
        self.port = free_port()
        env = {**subprocess_env(), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "defectkit", "app", "--project", str(self.project),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the app exited with {self.process.returncode}:\n{tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the app did not answer on {self.url} in {timeout:.0f} s:\n{tail(self.log)}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> AppServer:
        """Stop and start again on the same project (a new port), as after a reboot."""
        self.stop()
        return self.start()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def launch_chromium(playwright):
    """Debian's Chromium, headless, through a started ``sync_playwright()``."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class App:
    """Actions on the page by ``elem_id``, waiting for the status line each time.

    Args:
        page: a Playwright page showing the app.
        artefacts: folder for screenshots (``<prefix>-<step>-<name>.png``).
    """

    def __init__(self, page, artefacts: Path, prefix: str) -> None:
        self.page, self.artefacts, self.prefix, self.step = page, artefacts, prefix, 0

    def expect(self, locator):
        from playwright.sync_api import expect

        return expect(locator)

    def goto(self, url: str) -> None:
        """Load the page and wait until it has opened its project."""
        self.page.goto(url)
        self.expect(self.page.locator("#status")).to_contain_text("Project", timeout=60_000)
        self.idle()

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
        self.expect(self.page.locator("#status")).to_contain_text(text, timeout=timeout)

    def error_badges(self) -> list[str]:
        """Components showing Gradio's red Error badge (none on a healthy page)."""
        return self.page.evaluate(ERROR_BADGES_JS)

    def no_traceback(self) -> None:
        text = self.page.locator("body").inner_text()
        assert "Traceback" not in text and 'File "' not in text, "a stack trace reached the page"

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
        """Click the gallery thumbnail whose caption holds ``name``; wait for its editor."""
        self.page.locator("#gallery .thumbnail-item", has_text=name).first.click()
        self.expect(self.page.locator("#selected-image")).to_contain_text(name)
        # The editor is rendered afresh for the image, loads it, and syncs it back.
        self.expect(self.page.locator("#mask-editor")).to_contain_text(f"region of {name}")
        self.idle(SLOW_MS, "#mask-editor")

    def label(self, name: str, label: str, note: str = "", *, select: bool = True) -> None:
        if select:  # re-selecting reloads the editor, dropping unsaved paint
            self.select_image(name)
        self.page.locator("#label-choice label", has_text=label).first.click()
        if note:
            self.page.locator("#note textarea").fill(note)
        self.page.locator("#save-label").click()
        self.status(f"Saved {name}: {label}")

    def fit(self) -> None:
        """Click Fit and wait for the fit and the review of the unlabelled images."""
        self.tab("fit")
        self.page.locator("#fit").click()
        self.status("Fitted in", timeout=SLOW_MS)
        self.expect(self.page.locator("#review-progress")).to_contain_text(
            "Reviewed", timeout=SLOW_MS
        )

    def open_details(self, name: str, timeout: int = SLOW_MS) -> float:
        """Click the heatmap of ``name``; seconds until its details and heatmap are shown
        (the click-to-render time the latency benchmark reports)."""
        page = self.page
        overlay = page.locator("#review-overlay img")
        before = overlay.get_attribute("src") if overlay.count() else None
        started = time.perf_counter()
        page.locator("#review-gallery .thumbnail-item", has_text=name).first.click()
        page.wait_for_function(DETAILS_SHOWN_JS, arg=[name, before], timeout=timeout, polling=50)
        return time.perf_counter() - started

    def review_rows(self) -> dict[str, list[str]]:
        """The review table as {image name: [verdict, class, score, caption, label next: why]}
        in the table's order."""
        rows = {}
        for row in self.page.locator(REVIEW_ROWS).all():
            cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
            if cells and cells[0]:
                rows[cells[0]] = cells[1:]
        return rows

    def thumbnail_png(self, gallery: str, name: str) -> bytes:
        """A screenshot (PNG) of the picture of ``name``'s thumbnail in ``gallery``."""
        item = self.page.locator(f"{gallery} .thumbnail-item", has_text=name).first
        return item.locator("img").first.screenshot()

    def thumbnail_whole(self, gallery: str, name: str) -> tuple[bool, str]:
        """Whether ``name``'s thumbnail in ``gallery`` is drawn whole: scaled to fit its
        box ("contain", no crop) and not under its caption; and a line saying what it saw.

        For pictures whose colours a test cannot predict (heatmaps); :func:`ends_shown`
        checks the pixels themselves.
        """
        item = self.page.locator(f"{gallery} .thumbnail-item", has_text=name).first
        fit, img_bottom, caption_top = item.evaluate(
            """e => { const img = e.querySelector('img'), cap = e.querySelector('.caption-label');
                return [getComputedStyle(img).objectFit, img.getBoundingClientRect().bottom,
                        cap ? cap.getBoundingClientRect().top : Infinity]; }"""
        )
        whole = fit in ("contain", "scale-down") and img_bottom <= caption_top + 1
        return (
            whole,
            f"object-fit {fit}, picture ends at {img_bottom:.0f}, caption starts at {caption_top:.0f}",
        )

    def set_threshold(self, value: float) -> None:
        box = self.page.locator("#threshold input[type=number]")
        box.fill(f"{value:.3f}")
        box.press("Tab")  # the slider's number box reports on blur
        self.status(f"Threshold {value:.3f}")

    def paint(self, selector: str = "#mask-editor") -> None:
        """Drag the editor's brush across the middle of its canvas."""
        page = self.page
        page.locator(f"{selector} button[aria-label='Brush']").first.click()
        canvases = page.locator(f"{selector} canvas").all()
        box = max((c.bounding_box() for c in canvases), key=lambda b: b["width"] * b["height"])
        x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + box["width"] * 0.2, y + box["height"] * 0.1, steps=8)
        page.mouse.up()
        page.wait_for_timeout(800)  # the editor sends its layers to the server after a stroke


def ends_shown(png: bytes) -> tuple[bool, str]:
    """Whether a picture shows both end marks of :func:`defectkit.testing.labelling.mark_ends`
    (red first, blue last, along the long axis) and a line saying what it saw."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red = (r > g + 80) & (r > b + 80)
    blue = (b > r + 80) & (b > g + 80)
    if not red.any() or not blue.any():
        return False, f"red marks {int(red.sum())} px, blue marks {int(blue.sum())} px"
    ry, rx = np.nonzero(red)
    by, bx = np.nonzero(blue)
    wide = abs(bx.mean() - rx.mean()) >= abs(by.mean() - ry.mean())
    first, last = (rx.mean(), bx.mean()) if wide else (ry.mean(), by.mean())
    return first < last, f"red at {first:.0f}, blue at {last:.0f} ({'x' if wide else 'y'})"
