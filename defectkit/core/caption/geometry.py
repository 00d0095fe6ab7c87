"""Where a defect region is, how big, and which way it points: the caption's geometry.

Measured on the region's own pixels (its connected component, not its box) with
:func:`defectkit.core.geometry.mask_geometry`, the function that measured the synthetic
ground truth, so caption and truth agree on conventions. The values behind the
constants below are in ``benchmarks/results/tuning.md``.
"""

from __future__ import annotations

import math

import numpy as np

from defectkit.core.caption.size import AreaEstimate, estimate_area
from defectkit.core.geometry import mask_geometry, second_moments
from defectkit.core.results import Region, RegionGeometry

#: Elongation (major / minor axis) from which a region is "elongated" and gets an
#: orientation: low, because the anomaly map blurs thin defects into bands.
ELONGATED = 1.75
#: The same bar for a defect's own pixels (a sharp edge): not blurred, so higher.
PIXEL_ELONGATED = 2.5
#: Fewest seed pixels (a soft edge's sure core) whose shape is stated: a few specks of
#: texture are no shape.
CORE_MIN_PX = 40
#: Elongation from which an elongated region is called "thin".
THIN = 4.0
#: How much longer than the defect an anomaly-map region can be (its blur at both ends):
#: a length measured on the region is stated as "at least length / this".
REGION_LENGTH_OVERSHOOT = 1.25
#: A centroid closer than this fraction of the image side to a 3 x 3 cell border names
#: both cells: a few pixels of localisation error must not make the place false.
BORDER_MARGIN = 0.03

_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")


def major_axis_length(mask: np.ndarray) -> float:
    """Length of a region along its major axis: sqrt(12 x variance) + the pixel's own.

    Exact for a straight line or a filled rectangle (each pixel a unit square, as in
    ``mask_geometry``); for a jagged crack it is the end-to-end span, not the path.
    """
    _, _, _, sxx, syy, sxy = second_moments(mask)
    major = (sxx + syy) / 2.0 + math.hypot((sxx - syy) / 2.0, sxy)
    return math.sqrt(12.0 * (major + 1.0 / 12.0))


def cells_of(
    x: float, y: float, width: int, height: int, *, margin: float = BORDER_MARGIN
) -> list[str]:
    """3 x 3 cells (``"upper-left"`` ...) holding pixel (x, y); two or four when it lies
    within ``margin`` (a fraction of the side) of a cell border."""

    def candidates(v: float, side: int) -> list[int]:
        f = (v + 0.5) / side  # pixel centres sit at index + 0.5 of the image's extent
        c = min(max(int(f * 3), 0), 2)
        out = [c]
        if c > 0 and f - c / 3 < margin:
            out.insert(0, c - 1)
        if c < 2 and (c + 1) / 3 - f < margin:
            out.append(c + 1)
        return out

    return [f"{_ROWS[r]}-{_COLS[c]}" for r in candidates(y, height) for c in candidates(x, width)]


def orientation_word(angle_deg: float) -> str:
    """Angle in the datasets' convention (0 horizontal, 45 rising to the right) -> a word."""
    a = angle_deg % 180.0
    if a < 22.5 or a >= 157.5:
        return "horizontal"
    if a < 67.5:
        return "rising"
    if a < 112.5:
        return "vertical"
    return "falling"


def region_geometry(
    region: Region,
    *,
    part_mask: np.ndarray | None,
    part_area: int,
    image_size: tuple[int, int],
    scale_mm_per_px: float | None,
    image: np.ndarray | None = None,
) -> RegionGeometry:
    """Where, how big and which way: the geometry part of a record.

    The box and centroid are the region's; this adds the 3 x 3 cells, area (and its
    share of the part), major-axis length, equivalent diameter, elongation, shape and -
    for elongated regions only - orientation. For compact regions it adds the defect's
    own area read off ``image`` (:func:`~defectkit.core.caption.size.estimate_area`):
    ``area_estimate`` (``"about"``, ``"between"`` or, without an image, ``"up_to"``)
    with ``area_low_px`` / ``area_high_px``; ``area_px`` stays the region's.

    Where the defect's edge is sharp (an ``"about"`` estimate), shape, orientation and
    length are the defect's own pixels' (``shape_from: "pixels"``): the map blurs a thin
    crack into a blob. Otherwise they are the region's, and an elongated region's length
    is stated as a lower bound (``length_estimate: "at_least"``, ``length_low_px``; see
    ``REGION_LENGTH_OVERSHOOT``). The pixels' length is stated as an estimate only when
    they lie inside the region; where they reach its edge (``cut``: the defect may go
    on beyond it, as faint scratch ends and crack branches do) it is a lower bound too,
    the smaller of the pixels' and the region's.
    """
    crop, (x0, y0) = region.pixels, region.origin
    g = mask_geometry(crop)
    cx, cy = g["centre"][0] + x0, g["centre"][1] + y0
    area = g["area_px"]
    if part_mask is not None:
        inside = int(part_mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]][crop].sum())
    else:
        inside = area
    estimate = (
        estimate_area(image, crop, region.origin)
        if image is not None
        else AreaEstimate("up_to", None, area)
    )
    own = estimate.pixels[0] if estimate.pixels is not None else None  # a sharp edge
    form = mask_geometry(own) if own is not None else g
    elongated = form["elongation"] >= (PIXEL_ELONGATED if own is not None else ELONGATED)
    line = _line_core(estimate) if own is None and not elongated else None
    core = line[0] if line is not None else None
    if line is not None:  # a soft edge around a line: the region's blob is not the shape
        form, elongated = line[1], True
    shape = ("thin" if form["elongation"] >= THIN else "elongated") if elongated else "compact"
    out = RegionGeometry(
        position=cells_of(cx, cy, image_size[1], image_size[0]),
        area_px=area,
        area_percent=round(100.0 * inside / max(part_area, 1), 3),
        length_px=round(major_axis_length(next(m for m in (own, core, crop) if m is not None)), 2),
        diameter_px=round(_diameter(area), 2),
        elongation=form["elongation"],
        shape=shape,
        shape_from="pixels" if own is not None else "core" if core is not None else "region",
        orientation_deg=form["orientation_deg"] if elongated else None,
        orientation=orientation_word(form["orientation_deg"]) if elongated else None,
    )
    if elongated:
        out.length_from = out.shape_from
        if own is not None and not estimate.cut:
            out.length_estimate, out.length_low_px = "about", out.length_px
        elif own is not None or core is not None:
            # The pixels reach the region's edge: the region may have cut the defect off
            # (its faint ends, a branch) and they may have run into the texture there,
            # so neither they nor the region give an estimate; both give a lower bound,
            # and the smaller is stated. So for a line core: surely the defect's pixels,
            # but not all of them.
            out.length_estimate = "at_least"
            region_low = major_axis_length(crop) / REGION_LENGTH_OVERSHOOT
            out.length_low_px = round(min(out.length_px, region_low), 2)
        else:
            out.length_estimate = "at_least"
            out.length_low_px = round(out.length_px / REGION_LENGTH_OVERSHOOT, 2)
    else:
        share = inside / max(area, 1)  # of the region, the part's share
        out.area_estimate = estimate.estimate
        out.area_low_px, out.area_high_px = estimate.low, estimate.high
        out.area_percent = round(100.0 * estimate.high * share / max(part_area, 1), 3)
        out.diameter_px = round(_diameter(estimate.high), 2)
        out.diameter_low_px = None if estimate.low is None else round(_diameter(estimate.low), 2)
    if scale_mm_per_px is not None:
        if elongated:
            out.length_mm = round(out.length_px * scale_mm_per_px, 3)
            out.length_low_mm = round(out.length_low_px * scale_mm_per_px, 3)
        else:
            out.diameter_mm = round(out.diameter_px * scale_mm_per_px, 3)
            if out.diameter_low_px is not None:
                out.diameter_low_mm = round(out.diameter_low_px * scale_mm_per_px, 3)
    return out


def _line_core(estimate: AreaEstimate) -> tuple[np.ndarray, dict] | None:
    """The seeds' pixels of a soft-edged estimate and their ``mask_geometry`` when they
    form a line, else None.

    They are surely the defect's, so a line of them means the defect is not compact
    even where the map blurred it into a round region (a faint crack on a bright
    texture). Only from ``CORE_MIN_PX`` pixels on: a few specks of texture or of a
    spot's dark middle are no shape.
    """
    if estimate.core is None:
        return None
    core = estimate.core[0]
    if core.sum() < CORE_MIN_PX:
        return None
    geometry = mask_geometry(core)
    return (core, geometry) if geometry["elongation"] >= PIXEL_ELONGATED else None


def _diameter(area: float) -> float:
    """Equivalent diameter: of the disc with this area."""
    return math.sqrt(4.0 * area / math.pi)
