"""Draw one defect of a known kind into a clean surface, with its exact pixel mask.

Every drawer changes pixels *inside its mask only*, so after the one rounding to uint8
the defective image equals the clean one everywhere outside the mask: the mask is the
exact set of pixels the defect may have touched, not an annotator's guess. Edges that
should look soft (stains) fade inside the mask and keep a small step at its border.

Contrasts are a few tens of grey levels (holes and missing regions, which show the dark
background, more): visible to a person at a glance, but of the order of the texture's own
variation, so a detector has to model the texture rather than threshold brightness.

Sizes are for a 256-pixel image and scale with ``min(H, W) / 256``; widths of thin
defects (scratches, cracks) do not scale, because real scratches stay thin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from defectkit.errors import DatasetError


class DrawnDefect(NamedTuple):
    """A defective image (H x W x 3 float32), its exact mask (H x W bool) and the drawing
    parameters (``angle_deg``, ``length_px``, ... as drawn, before any rasterisation)."""

    image: np.ndarray
    mask: np.ndarray
    params: dict[str, Any]


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return x.astype(np.float32), y.astype(np.float32)


def _scale(shape: tuple[int, int]) -> float:
    return min(shape) / 256.0


def _direction(angle_deg: float) -> np.ndarray:
    """Unit (dx, dy) for an on-screen counter-clockwise angle (y grows downwards)."""
    a = math.radians(angle_deg)
    return np.array([math.cos(a), -math.sin(a)])


def _segment_distance(x, y, p, q) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel centre to segment p-q, and the position t in [0, 1] along it."""
    d = q - p
    t = ((x - p[0]) * d[0] + (y - p[1]) * d[1]) / max(float(d @ d), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(x - (p[0] + t * d[0]), y - (p[1] + t * d[1])), t


def _polyline_distance(x, y, points: np.ndarray) -> np.ndarray:
    dist = np.full(x.shape, np.inf, dtype=np.float32)
    for p, q in zip(points[:-1], points[1:], strict=True):
        dist = np.minimum(dist, _segment_distance(x, y, p, q)[0])
    return dist


def _place(rng, shape, half_w: float, half_h: float) -> tuple[float, float]:
    """A centre that keeps a box of the given half-extents (plus 3 px) inside the image."""
    h, w = shape
    mx, my = half_w + 3.0, half_h + 3.0
    return float(rng.uniform(mx, max(mx, w - 1 - mx))), float(rng.uniform(my, max(my, h - 1 - my)))


def _ellipse(x, y, centre, a: float, b: float, angle_deg: float) -> np.ndarray:
    """Normalised radius (1 on the border) of an ellipse with semi-axes a (along angle) and b."""
    u, v = _direction(angle_deg)
    dx, dy = x - centre[0], y - centre[1]
    along, across = dx * u + dy * v, -dx * v + dy * u
    return np.sqrt((along / a) ** 2 + (across / b) ** 2)


def _apply(image: np.ndarray, mask: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Add ``delta`` (H x W, or H x W x 3) inside the mask only; outside stays bit-identical."""
    out = image.copy()
    if delta.ndim == 2:
        delta = delta[:, :, None]
    out[mask] += np.broadcast_to(delta, image.shape)[mask]
    return out


def scratch(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Thin straight line, 30-55 % of the image long, any orientation, usually bright."""
    shape, m = image.shape[:2], min(image.shape[:2])
    length, width = rng.uniform(0.3, 0.55) * m, rng.uniform(1.2, 2.6)
    angle = rng.uniform(0.0, 180.0)
    d = _direction(angle)
    centre = np.array(
        _place(rng, shape, abs(d[0]) * length / 2 + width, abs(d[1]) * length / 2 + width)
    )
    x, y = _grid(shape)
    dist, t = _segment_distance(x, y, centre - d * length / 2, centre + d * length / 2)
    mask = dist <= width / 2
    sign = 1.0 if rng.random() < 0.7 else -1.0  # scratches through a coating catch the light
    amplitude = rng.uniform(40.0, 70.0)
    strength = (0.65 + 0.35 * np.sin(np.pi * t)) * (1.0 - 0.35 * (dist / (width / 2)) ** 2)
    params = {"angle_deg": angle, "length_px": length, "width_px": width}
    return DrawnDefect(_apply(image, mask, sign * amplitude * strength), mask, params)


def spot(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Small roundish dot (contamination, 3-8 px radius), dark or bright."""
    shape, s = image.shape[:2], max(_scale(image.shape[:2]), 0.4)
    a = rng.uniform(3.0, 8.0) * s
    b, angle = a * rng.uniform(0.7, 1.0), rng.uniform(0.0, 180.0)
    centre = _place(rng, shape, a, a)
    r = _ellipse(*_grid(shape), centre, a, b, angle)
    mask = r <= 1.0
    sign = -1.0 if rng.random() < 0.6 else 1.0
    delta = sign * rng.uniform(45.0, 75.0) * (1.0 - 0.3 * r**2)
    params = {"radius_px": a, "angle_deg": angle}
    return DrawnDefect(_apply(image, mask, delta), mask, params)


def crack(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Dark jagged polyline along a main direction, sometimes with one short branch."""
    shape, s = image.shape[:2], max(_scale(image.shape[:2]), 0.25)
    angle = rng.uniform(0.0, 180.0)
    steps = rng.uniform(6.0, 12.0, int(rng.integers(6, 11))) * s
    turns = angle + rng.normal(0.0, 20.0, steps.size)
    vectors = np.stack([_direction(a) * step for a, step in zip(turns, steps, strict=True)])
    paths = [np.vstack([[0.0, 0.0], np.cumsum(vectors, axis=0)])]
    if rng.random() < 0.5:
        start = paths[0][int(rng.integers(2, steps.size - 1))]
        side = angle + rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 60.0)
        twigs = [
            _direction(side + rng.normal(0.0, 15.0)) * rng.uniform(4.0, 8.0) * s
            for _ in range(int(rng.integers(2, 4)))
        ]
        paths.append(np.vstack([start, start + np.cumsum(twigs, axis=0)]))
    width = rng.uniform(1.0, 2.0)
    points = np.vstack(paths)
    lo, hi = points.min(axis=0), points.max(axis=0)
    room = np.array([shape[1], shape[0]]) - 10.0 - 2.0 * width  # _place's margins
    shrink = min(1.0, float(np.min(room / np.maximum(hi - lo, 1e-6))))
    half = (hi - lo) * shrink / 2
    offset = np.array(_place(rng, shape, half[0] + width, half[1] + width)) - (lo + hi) * shrink / 2
    x, y = _grid(shape)
    dist = np.min([_polyline_distance(x, y, p * shrink + offset) for p in paths], axis=0)
    mask = dist <= width / 2
    delta = -rng.uniform(55.0, 90.0) * (1.0 - 0.4 * (dist / (width / 2)) ** 2)
    params = {
        "angle_deg": angle,
        "length_px": float(steps.sum() * shrink),
        "width_px": width,
        "branched": len(paths) > 1,
    }
    return DrawnDefect(_apply(image, mask, delta), mask, params)


def hole(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Dark disc (5-14 px radius): the surface is gone and the dark backing shows."""
    shape, s = image.shape[:2], max(_scale(image.shape[:2]), 0.4)
    a = rng.uniform(5.0, 14.0) * s
    b, angle = a * rng.uniform(0.85, 1.0), rng.uniform(0.0, 180.0)
    centre = _place(rng, shape, a, a)
    mask = _ellipse(*_grid(shape), centre, a, b, angle) <= 1.0
    keep = rng.uniform(0.4, 0.55)  # a little of the texture shows through the shadow
    delta = image * (keep - 1.0)
    params = {"radius_px": a, "angle_deg": angle}
    return DrawnDefect(_apply(image, mask, delta), mask, params)


_STAIN_COLOURS = (
    (-0.6, -0.9, -1.5),  # brown (coffee, oil)
    (0.2, -0.8, -1.6),  # rust: yellow-orange shift
    (-1.0, -1.0, -1.0),  # grey (dirt)
)


def stain(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Soft-edged irregular blob (12-30 px) that shifts the colour, not only the brightness."""
    shape, s = image.shape[:2], max(_scale(image.shape[:2]), 0.3)
    radius, aspect = rng.uniform(12.0, 30.0) * s, rng.uniform(1.0, 1.5)
    angle = rng.uniform(0.0, 180.0)
    extent = radius * aspect * 1.3
    centre = _place(rng, shape, extent, extent)
    x, y = _grid(shape)
    r = _ellipse(x, y, centre, radius * aspect, radius, angle)
    u, v = _direction(angle)
    phi = np.arctan2(
        -(x - centre[0]) * v + (y - centre[1]) * u, (x - centre[0]) * u + (y - centre[1]) * v
    )
    border = 1.0 + sum(
        rng.uniform(0.0, 0.1) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)
    )
    mask = r < border
    inside = np.clip((1.0 - r / border) / 0.6, 0.0, 1.0)
    alpha = 0.35 + 0.65 * inside * inside * (3.0 - 2.0 * inside)  # smoothstep, 0.35 at the rim
    colour_rgb = _STAIN_COLOURS[int(rng.integers(len(_STAIN_COLOURS)))]
    colour = np.asarray(colour_rgb, dtype=np.float32)
    delta = (rng.uniform(25.0, 45.0) * alpha)[:, :, None] * colour
    params = {"radius_px": radius, "aspect": aspect, "angle_deg": angle, "colour": colour_rgb}
    return DrawnDefect(_apply(image, mask, delta), mask, params)


def missing(image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Axis-aligned rectangle where the surface is missing and the dark background shows."""
    h, w = image.shape[:2]
    rw = max(4.0, rng.uniform(0.1, 0.25) * w)
    rh = max(4.0, rng.uniform(0.06, 0.2) * h)
    cx, cy = _place(rng, (h, w), rw / 2, rh / 2)
    x0, y0 = int(round(cx - rw / 2)), int(round(cy - rh / 2))
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y0 + int(round(rh)), x0 : x0 + int(round(rw))] = True
    backdrop = rng.uniform(12.0, 35.0) + rng.normal(0.0, 3.0, (h, w)).astype(np.float32)
    delta = backdrop[:, :, None] - image
    params = {"width_px": float(mask.any(axis=0).sum()), "height_px": float(mask.any(axis=1).sum())}
    return DrawnDefect(_apply(image, mask, delta), mask, params)


_DEFECTS: dict[str, Callable[[np.ndarray, np.random.Generator], DrawnDefect]] = {
    "scratch": scratch,
    "spot": spot,
    "crack": crack,
    "hole": hole,
    "stain": stain,
    "missing": missing,
}


def list_defect_types() -> list[str]:
    """Defect kinds :func:`draw_defect` knows, in a fixed order (it seeds their streams)."""
    return list(_DEFECTS)


def draw_defect(kind: str, image: np.ndarray, rng: np.random.Generator) -> DrawnDefect:
    """Draw one ``kind`` defect into a clean H x W x 3 float32 surface (not modified)."""
    draw = _DEFECTS.get(kind)
    if draw is None:
        raise DatasetError(f"unknown defect type {kind!r}; use one of: {', '.join(_DEFECTS)}")
    drawn = draw(image, rng)
    params = {k: round(float(v), 2) if isinstance(v, float) else v for k, v in drawn.params.items()}
    return DrawnDefect(drawn.image.astype(np.float32, copy=False), drawn.mask, params)
