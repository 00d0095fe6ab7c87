"""Heatmap overlays: the anomaly map blended on the image, defect boxes drawn on top.

Torch-free: the CLI, the report, the app and the daemon all draw overlays with this.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# A perceptually ordered dark-blue -> red -> yellow ramp (a short "inferno"-like table),
# so operators read "hotter = worse" without a legend.
_RAMP = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
     [245, 125, 21], [250, 193, 39], [252, 255, 164]],
    dtype=np.float64,
)


def colorize(values: np.ndarray) -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 uint8 colours."""
    v = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    t = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - t) + _RAMP[hi] * t).astype(np.uint8)


def overlay(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    *,
    threshold: float,
    boxes: list | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend the anomaly map on the image.

    The colour scale is anchored at the threshold (it maps to the middle of the ramp),
    so the same colour means the same thing on every image of a line.

    Args:
        image: H x W x 3 uint8.
        anomaly_map: H x W float, same size as ``image``.
        threshold: the image threshold in map units.
        boxes: optional [x0, y0, x1, y1] boxes to outline.
    """
    scaled = anomaly_map / (2.0 * threshold) if threshold > 0 else anomaly_map
    heat = colorize(scaled).astype(np.float32)
    # Only the part above a quarter of the threshold is tinted, so good areas stay readable.
    weight = alpha * np.clip((scaled - 0.125) / 0.25, 0.0, 1.0)[..., None]
    blended = (image.astype(np.float32) * (1 - weight) + heat * weight).astype(np.uint8)
    if boxes:
        pil = Image.fromarray(blended)
        draw = ImageDraw.Draw(pil)
        width = max(1, round(min(image.shape[:2]) / 150))
        for x0, y0, x1, y1 in boxes:
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 255, 128), width=width)
        blended = np.asarray(pil)
    return blended
