"""Fixtures of the integration tests, each made on first use (a test that does not ask
for one never starts it):

- the browser tests: headless Chromium, a fresh tab per test, a screenshot folder;
- the archive-run tests: a LocalCluster of 2 worker processes and a real small exported
  bundle (fitted and exported once per session).

The throw-away PostgreSQL server (``postgres_server``) is in tests/conftest.py: the
review store's unit tests run their contract on it too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# -- browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium through Playwright, shared by the browser tests of one module.

    Not the whole session: Playwright's sync API keeps its event loop marked as running
    in the main thread while it is open, and later tests that call ``asyncio.run`` (the
    daemon's upload reader) then fail with "cannot be called from a running event loop"."""
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


# -- archive runs -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of 2 single-threaded worker processes on 127.0.0.1, shared by the
    archive tests (starting one costs seconds)."""
    pytest.importorskip(
        "distributed", reason="dask/distributed not installed: pip install 'defectkit[batch]'"
    )
    from defectkit.apps.batch.cluster import open_client

    with open_client(workers=2, dashboard="127.0.0.1:0") as client:
        yield client


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory) -> Path:
    """An ONNX bundle of the embedded backbone fitted on 6 small synthetic shots (quick to
    fit, export and run; the path is the same at any size)."""
    from defectkit.datasets import make_synthetic
    from defectkit.exporters.export import export_bundle
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(128, 128), seed=0)
    inspector = Inspector(InspectorConfig(augmentations=1, bank_size=256))
    inspector.fit(samples)
    folder = tmp_path_factory.mktemp("batch-bundle") / "bundle"
    return export_bundle(
        inspector, folder, target="onnx", check_images=[s.load_image() for s in samples]
    )
