"""Where a region is, how big, and which way it points: facts read off a boolean mask.

The synthetic ground truth is computed here from the exact mask, so every number in a
synthetic sample's ``meta`` is true of its mask by construction. The caption adapter can
use the same function on predicted masks, so a caption and its ground truth are measured
the same way.

Conventions (all in pixel-index coordinates: pixel ``[y, x]`` has its centre at (x, y),
x to the right, y downwards):

- ``centre``: (x, y) centroid of the mask's pixels.
- ``bbox``: (x0, y0, x1, y1) with x1, y1 *exclusive*, so ``image[y0:y1, x0:x1]`` is the box.
- ``orientation_deg``: angle of the major axis in [0, 180), 0 = horizontal, positive
  counter-clockwise *as seen on screen* (the direction (cos a, -sin a) in x, y since y grows
  downwards), so 45 means "rising to the right". Only meaningful when ``elongation`` is
  well above 1 (a disc has no orientation).
- ``elongation``: major / minor axis ratio from second moments, >= 1. Each pixel counts as a
  unit square (variance 1/12 added per axis), so a one-pixel-wide line gets a finite ratio.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_PIXEL_VARIANCE = 1.0 / 12.0  # variance of a uniform unit square along one axis


def second_moments(mask: np.ndarray) -> tuple[int, float, float, float, float, float]:
    """(area, cx, cy, sxx, syy, sxy) of a bool mask's pixels: count, centroid, covariance.

    Computed from row and column projections (two sums and one matrix-vector product),
    not from the list of pixel coordinates, so a region covering a whole 5-megapixel
    image costs milliseconds.

    Raises:
        ValueError: the mask is empty.
    """
    m = np.asarray(mask, dtype=bool)
    rows, cols = m.sum(axis=1, dtype=np.int64), m.sum(axis=0, dtype=np.int64)
    n = int(rows.sum())
    if n == 0:
        raise ValueError("the mask is empty")
    ys, xs = np.arange(m.shape[0], dtype=np.float64), np.arange(m.shape[1], dtype=np.float64)
    cx, cy = float(cols @ xs) / n, float(rows @ ys) / n
    dx, dy = xs - cx, ys - cy
    sxx, syy = float(cols @ (dx * dx)) / n, float(rows @ (dy * dy)) / n
    sxy = float((m @ dx) @ dy) / n
    return n, cx, cy, sxx, syy, sxy


def mask_geometry(mask: np.ndarray) -> dict[str, Any]:
    """Centre, bbox, area, orientation and elongation of an H x W bool mask.

    Returns:
        ``{"centre": (x, y), "bbox": (x0, y0, x1, y1), "area_px": int,
        "orientation_deg": float, "elongation": float}`` with plain Python numbers
        (JSON-able); floats rounded to 2 decimals.

    Raises:
        ValueError: the mask is empty (an empty region has no geometry).
    """
    m = np.asarray(mask, dtype=bool)
    n, cx, cy, sxx, syy, sxy = second_moments(m)
    (y_on,), (x_on,) = np.nonzero(m.any(axis=1)), np.nonzero(m.any(axis=0))
    # Eigen-decomposition of the 2x2 covariance in closed form.
    half_trace, diff = (sxx + syy) / 2.0, math.hypot((sxx - syy) / 2.0, sxy)
    major, minor = half_trace + diff, max(half_trace - diff, 0.0)
    # Major-axis angle in image coordinates (y down), then flipped to on-screen CCW.
    angle_image = 0.5 * math.degrees(math.atan2(2.0 * sxy, sxx - syy))
    orientation = (-angle_image) % 180.0
    elongation = math.sqrt((major + _PIXEL_VARIANCE) / (minor + _PIXEL_VARIANCE))
    return {
        "centre": (round(cx, 2), round(cy, 2)),
        "bbox": (int(x_on[0]), int(y_on[0]), int(x_on[-1]) + 1, int(y_on[-1]) + 1),
        "area_px": n,
        "orientation_deg": round(orientation, 2) % 180.0,
        "elongation": round(elongation, 2),
    }


def angle_difference(a_deg: float, b_deg: float) -> float:
    """Smallest difference between two axis orientations (mod 180), in [0, 90]."""
    d = abs(a_deg - b_deg) % 180.0
    return min(d, 180.0 - d)
