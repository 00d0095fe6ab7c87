"""Both opinions on paper: ``second_opinion.json`` and an ``index.html`` with overlays.

One row per part, disagreements first: the part with the line bundle's defect region
outlined, the same with the heavy model's, and each model's verdict, class,
probability, score and caption. The pictures are small PNGs beside the page, so the
folder can be copied or mailed as it is.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from PIL import Image

from defectkit.apps.reviewqueue.items import decode_mask
from defectkit.apps.reviewqueue.opinions import SecondOpinion
from defectkit.core.files import write_atomic
from defectkit.core.images import read_image
from defectkit.core.overlay import overlay

REPORT_JSON = "second_opinion.json"
#: Longest side of the pictures in the report (a 5 MP part would make a huge page).
PICTURE_SIDE = 320


def picture(image: np.ndarray, mask_png: bytes | None) -> np.ndarray:
    """``image`` with a model's defect mask (PNG, as stored) tinted; unchanged when the
    model proposed none or the mask is of another size."""
    mask = decode_mask(mask_png)
    if mask is None or mask.shape != image.shape[:2]:
        return image
    return overlay(image, mask.astype(np.float32), threshold=0.5)


def write_report(pairs: list[SecondOpinion], folder: str | Path, *, heavy_path: str) -> Path:
    """Write ``second_opinion.json``, ``index.html`` and two PNGs per part; returns the page."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, pair in enumerate(pairs):
        image = read_image(pair.item.image) if pair.item.image is not None else None
        names = []
        for tag, opinion in (("line", pair.line), ("heavy", pair.heavy)):
            name = f"{index:04d}-{tag}.png"
            if image is not None:
                _save_small(picture(image, opinion.mask_png), folder / name)
                names.append(name)
        rows.append(_row(pair, names))
    summary = {
        "heavy_model": heavy_path,
        "parts": len(pairs),
        "disagreements": sum(p.disagrees for p in pairs),
        "items": [p.to_json() for p in pairs],
    }
    write_atomic(folder / REPORT_JSON, json.dumps(summary, indent=2).encode())
    page = folder / "index.html"
    write_atomic(page, _page(summary, rows).encode())
    return page


def _row(pair: SecondOpinion, pictures: list[str]) -> str:
    item = pair.item
    flag = (
        f'<p class="disagree">Disagree: {html.escape(pair.disagreement)}</p>'
        if pair.disagrees else '<p class="agree">Agree</p>'
    )  # fmt: skip
    cells = "".join(
        f"<td><img src='{name}' alt='{tag}'><br><b>{tag}</b> {html.escape(op.describe())}"
        f"<br><i>{html.escape(op.caption or '')}</i></td>"
        for name, tag, op in zip(pictures, ("line", "heavy"), (pair.line, pair.heavy),
                                  strict=False)  # fmt: skip
    )
    title = html.escape(f"{item.name or item.sha256[:12]} from {item.station}: {item.reason}")
    return f"<tr><td><b>{title}</b>{flag}</td>{cells}</tr>"


def _page(summary: dict, rows: list[str]) -> str:
    head = (
        f"{summary['parts']} part(s), {summary['disagreements']} where the heavy model "
        f"disagrees (first); heavy model {html.escape(summary['heavy_model'])}"
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>Second opinion</title><style>"
        "body{font-family:sans-serif}td{vertical-align:top;padding:6px}"
        ".disagree{color:#b00;font-weight:bold}.agree{color:#060}img{max-width:320px}</style>"
        f"<h1>Second opinion</h1><p>{head}</p><table>{''.join(rows)}</table>"
    )


def _save_small(image: np.ndarray, path: Path) -> None:
    pil = Image.fromarray(image)
    pil.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
    pil.save(path, format="PNG", optimize=True)
