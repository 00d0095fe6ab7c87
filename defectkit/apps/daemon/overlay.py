"""Overlay PNGs: the anomaly heatmap blended on the image, defect boxes drawn on top.

Drawn by :func:`defectkit.core.overlay.overlay`: the colour scale is tied to the
image threshold, not stretched per image, so overlays can be compared by eye.

Overlays of large images are drawn scaled down to at most :data:`MAX_OVERLAY_PIXELS`:
blending costs about 80 bytes per pixel (float maps and colour ramps at the drawn
size), so a full-size overlay of a 79 MP image took 6 GB and 30 s, for a picture
nobody views at that size. Boxes are scaled with the image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.core.decide import resize_map
from defectkit.core.files import atomic_file
from defectkit.core.overlay import overlay

#: Largest overlay drawn (pixels); bigger images are scaled down to this first.
MAX_OVERLAY_PIXELS = 4_000_000


def render_overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    *,
    threshold: float,
    boxes: Sequence[Sequence[int]] = (),
    max_pixels: int = MAX_OVERLAY_PIXELS,
) -> Image.Image:
    """Blend ``anomaly_map`` (any h x w) on ``image`` (H x W x 3 uint8) and draw the
    [x0, y0, x1, y1] ``boxes``, with the one overlay renderer the CLI, report and app
    use too; images over ``max_pixels`` are drawn scaled down to fit it."""
    h, w = image.shape[:2]
    scale = min(1.0, (max_pixels / (h * w)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=2.0))
    amap = resize_map(np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32)), image.shape[:2])
    boxes = [[round(v * scale) for v in b] for b in boxes if len(b) == 4]
    return Image.fromarray(overlay(image, amap, threshold=threshold, boxes=boxes))


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
            image, result.anomaly_map, threshold=float(result.threshold), boxes=result.boxes
        )
        # No fsync: an overlay is derived, one per image, and cheap to draw again.
        with atomic_file(path, fsync=False) as tmp:
            overlay.save(tmp, format="PNG", compress_level=1)  # speed over size: one per image
        return path
