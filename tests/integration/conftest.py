"""Fixtures of the browser tests (the labelling app in headless Chromium).

Only fixtures, made on first use: other integration tests never start a browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium through Playwright, shared by every browser test of the run."""
    from playwright.sync_api import sync_playwright

    from defectkit.testing.app_browser import launch_chromium

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def artefacts(request) -> Path:
    """This module's screenshot folder, emptied at the start of each run (it holds one run):
    ``tests/artifacts/<module>/`` or ``$DEFECTKIT_ARTIFACTS/<module>/``."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    root = Path(os.environ.get("DEFECTKIT_ARTIFACTS", REPO / "tests" / "artifacts"))
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n[{name}] screenshots in {folder}")
    return folder


@pytest.fixture
def page(chromium):
    """A fresh browser tab (its own context: no state from other tests), at the app's size."""
    from defectkit.testing.app_browser import STEP_MS, VIEWPORT

    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    yield page
    context.close()
