"""The HTML page of ``inspect compare``: counts, class transitions, and each changed part's
overlays under the old and the new bundle side by side.

Self-contained like the evaluation report: one ``index.html``, PNG overlays beside it
and ``comparison.json``, no JavaScript. An overlay is the heatmap when the bundle's
folder was given (the image is inspected again with it: the same computation as the
stored row), else the stored defect boxes on the image. Images are read from the
row's name, so pages of archive runs show them and a daemon's rows, whose names are
bare file names, say the image is not at hand.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from defectkit.apps.batch.compare import BundleRef, ChangedPart, Comparison, Verdict
from defectkit.apps.batch.sources import is_url, read_location
from defectkit.core.files import atomic_directory
from defectkit.core.images import read_image
from defectkit.core.overlay import overlay
from defectkit.errors import DefectkitError

#: Width of the overlays on the page, in pixels (the PNGs are saved at this width).
THUMB_WIDTH = 320
MARKER = "comparison.json"

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}img{width:320px}.flip{color:#b00020;font-weight:600}.cap{font-size:12px;color:#555;max-width:320px}"""


def write_compare_page(comparison: Comparison, folder: str | Path) -> Path:
    """Write ``folder/index.html`` (replacing a page written before) and return its path."""
    folder = Path(folder)
    with atomic_directory(folder, marker=MARKER) as tmp:
        (tmp / "overlays").mkdir()
        rows = [_part_row(part, comparison, tmp / "overlays") for part in comparison.changed]
        (tmp / MARKER).write_text(json.dumps(comparison.to_dict(), indent=1))
        (tmp / "index.html").write_text(_page(comparison, rows), encoding="utf-8")
    return folder / "index.html"


def _page(c: Comparison, part_rows: list[str]) -> str:
    counts = [("parts inspected by both", c.both), ("verdict changed", c.verdict_changed),
              ("class changed, same verdict", c.label_changed),
              ("inspected by one, rejected or failed by the other", c.status_changed),
              ("only in old", c.only_old), ("only in new", c.only_new)]  # fmt: skip
    count_rows = "".join(f"<tr><td>{k}</td><td class=n>{v:,}</td></tr>" for k, v in counts)
    transitions = "".join(
        f"<tr{' class=flip' if o != n else ''}><td>{_e(o)}</td><td>{_e(n)}</td><td class=n>{k:,}</td></tr>"
        for (o, n), k in c.transitions.items()
    )
    shown = f"the first {len(c.changed):,} of {c.verdict_changed + c.label_changed:,}"
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>compare {_e(c.old.id)} -> {_e(c.new.id)}</title><style>{_CSS}</style></head><body>
<h1>Bundle {_e(c.old.id)} (old) &rarr; {_e(c.new.id)} (new)</h1>
<table>{count_rows}</table>
<h2>Classes, old &rarr; new</h2>
<table><tr><th>old</th><th>new</th><th>parts</th></tr>{transitions}</table>
<h2>Changed parts ({shown})</h2>
<table><tr><th>part</th><th>old: {_e(c.old.id)}</th><th>new: {_e(c.new.id)}</th></tr>
{"".join(part_rows)}</table></body></html>
"""


def _part_row(part: ChangedPart, c: Comparison, overlays: Path) -> str:
    image = _load(part.name)
    cells = []
    for side, ref, verdict in (("old", c.old, part.old), ("new", c.new, part.new)):
        if image is None:
            picture = "<p>image not at hand</p>"
        else:
            file = overlays / f"{part.sha256[:16]}-{side}.png"
            _thumbnail(_draw(image, ref, verdict)).save(file)
            picture = f'<img src="overlays/{file.name}" alt="{side} overlay">'
        flip = " class=flip" if part.verdict_changed else ""
        cells.append(
            f"<td><div{flip}>{_e(verdict.verdict)} / {_e(verdict.label)} "
            f"({'n/a' if verdict.score is None else f'{verdict.score:.4f}'})</div>{picture}"
            f"<div class=cap>{_e(verdict.caption or '')}</div></td>"
        )
    name = _e(part.name or "")
    return f"<tr><td>{name}<br><code>{part.sha256[:16]}</code></td>{''.join(cells)}</tr>\n"


def _draw(image: np.ndarray, ref: BundleRef, verdict: Verdict) -> np.ndarray:
    if ref.bundle is not None:
        result = ref.bundle.inspect([image])[0]
        return overlay(image, result.anomaly_map, threshold=result.threshold, boxes=result.boxes)
    blank = np.zeros(image.shape[:2], np.float32)  # no map stored: the boxes alone
    return overlay(image, blank, threshold=1.0, boxes=[list(b) for b in verdict.boxes])


def _load(name: str | None) -> np.ndarray | None:
    """The image at an archive row's location; None for a daemon row's bare file name
    (never looked up in the working folder) or a file that is gone."""
    if not name or not (os.path.isabs(name) or is_url(name)):
        return None
    try:
        data = read_location(name, 512 * 2**20).data
        return None if data is None else read_image(data)
    except (OSError, DefectkitError):
        return None


def _thumbnail(pixels: np.ndarray) -> Image.Image:
    picture = Image.fromarray(pixels)
    if picture.width > THUMB_WIDTH:
        height = max(1, round(picture.height * THUMB_WIDTH / picture.width))
        picture = picture.resize((THUMB_WIDTH, height), Image.BILINEAR)
    return picture


def _e(value: object) -> str:
    return html.escape("n/a" if value is None else str(value))
