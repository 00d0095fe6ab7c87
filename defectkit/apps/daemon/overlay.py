"""Overlay PNGs: the anomaly heatmap blended on the image, defect boxes drawn on top.

The colour scale is tied to the image threshold (half-way up the scale = the decision
boundary), not stretched per image: a good part then looks calm and a defect hot, and
two overlays can be compared by eye.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from defectkit.inspect.results import resize_map

# A compact "jet"-like ramp: blue -> cyan -> green -> yellow -> red.
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array(
    [[0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0]], dtype=np.float32
)


def colourise(values: np.ndarray) -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 float32 RGB."""
    v = np.clip(values, 0.0, 1.0)
    return np.stack([np.interp(v, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1).astype(
        np.float32
    )


def render_overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    *,
    threshold: float,
    defects: list[dict[str, Any]] = (),
) -> Image.Image:
    """Blend ``anomaly_map`` (any h x w) on ``image`` (H x W x 3 uint8) and draw boxes."""
    h, w = image.shape[:2]
    amap = resize_map(np.asarray(anomaly_map, dtype=np.float32), (h, w))
    scale = 2.0 * threshold if threshold > 0 else float(np.nanmax(amap) or 1.0)
    values = np.nan_to_num(amap / scale, nan=0.0)
    alpha = (0.15 + 0.5 * np.clip(values, 0.0, 1.0))[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + colourise(values) * alpha
    out = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(1, min(h, w) // 200)
    for defect in defects:
        box = defect.get("box")
        if box and len(box) == 4:
            x0, y0, x1, y1 = (int(v) for v in box)
            draw.rectangle(
                [x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=(255, 0, 0), width=width
            )
    return out


class OverlayWriter:
    """Writes ``<folder>/<YYYY-MM-DD>/<sha256[:16]>.png``; daily folders keep listings small.

    Named by content hash, never by a client-supplied name, so an upload cannot choose
    where a file is written.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str, when: float) -> Path:
        day = time.strftime("%Y-%m-%d", time.gmtime(when))
        return self.folder / day / f"{sha256[:16]}.png"

    def write(self, image: np.ndarray, result: Any, *, sha256: str, when: float) -> Path:
        path = self.path_for(sha256, when)
        path.parent.mkdir(exist_ok=True)
        overlay = render_overlay(
            image, result.anomaly_map, threshold=float(result.threshold), defects=result.defects
        )
        tmp = path.with_suffix(".png.tmp")
        overlay.save(tmp, format="PNG", compress_level=1)  # speed over size: one per image
        tmp.replace(path)
        return path
