"""Regenerate the README's pictures in docs/images/ (small PNGs).

    python3 -m pytest -q tests/integration/test_app_browser.py   # app screenshots
    inspect demo                                                 # inspect-demo/report/
    python3 docs/make_images.py [--report inspect-demo/report]

``app.png`` is a screenshot the app's browser test keeps; ``report.png`` is the demo's
HTML report rendered in Debian's Chromium through Playwright (as the browser test does),
from the top down to the first row of worst-scored examples.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
ARTIFACTS = Path(os.environ.get("DEFECTKIT_ARTIFACTS", REPO / "tests" / "artifacts"))
APP_SHOT = ARTIFACTS / "app_browser" / "flow-06-review-details.png"
CHROMIUM = os.environ.get("DEFECTKIT_CHROMIUM", "/usr/bin/chromium")
WIDTH = 1000  # px: sharp on a README page, small on disk


def save_small(image: Image.Image, path: Path) -> None:
    """Downscale to WIDTH and store with a 256-colour palette (screenshots lose nothing visible)."""
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True
    )
    print(
        f"{path.relative_to(REPO)}: {image.width} x {image.height}, {path.stat().st_size // 1024} KB"
    )


def report_screenshot(report: Path, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1180, "height": 900})
        page.goto((report / "index.html").resolve().as_uri())
        worst = page.locator("h2", has_text="Worst-scored").bounding_box()
        first_example = page.locator(".ex").first.bounding_box()
        bottom = first_example["y"] + first_example["height"] if first_example else worst["y"]
        page.screenshot(path=str(path), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1180, "height": bottom + 4})  # fmt: skip
        browser.close()
    save_small(Image.open(path), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPO / "inspect-demo" / "report")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not APP_SHOT.is_file():
        raise SystemExit(
            f"{APP_SHOT} missing: run python3 -m pytest -q tests/integration/test_app_browser.py"
        )
    if not (args.report / "index.html").is_file():
        raise SystemExit(
            f"{args.report}/index.html missing: run `inspect demo` (or pass --report DIR)"
        )
    save_small(Image.open(APP_SHOT), OUT / "app.png")
    report_screenshot(args.report, OUT / "report.png")


if __name__ == "__main__":
    main()
