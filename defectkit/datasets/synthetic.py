"""Synthetic defect datasets with exact masks and ground truth, for tests and demos.

Real benchmarks tell us *whether* a defect was found; synthetic ones also tell us
*what is true about it* (type, place, size, orientation), which is what the caption
adapter's statements are checked against. Every defective sample carries

- ``mask_array``: H x W bool, exactly the pixels the defect changed (outside it the image is
  bit-identical to the clean surface);
- ``meta``: ``{"id", "texture", "type", "centre": (x, y), "bbox": (x0, y0, x1, y1),
  "area_px", "orientation_deg", "elongation", "contrast", "params"}``. The geometry is
  measured from the mask by :func:`~defectkit.core.geometry.mask_geometry` (see there
  for the conventions: orientation in [0, 180), 0 = horizontal, counter-clockwise as seen on
  screen with y growing downwards; bbox end exclusive). ``contrast`` is the mean change of
  grey level inside the mask (negative = darker); ``params`` are the drawing parameters.

Reproducible: image ``i`` of a kind depends only on (seed, kind, i), so asking for more
images, or other kinds, never changes the ones you already had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from defectkit.core.geometry import mask_geometry
from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample
from defectkit.datasets.defects import draw_defect, list_defect_types
from defectkit.datasets.textures import list_textures, make_texture
from defectkit.errors import DatasetError

MIN_SIDE = 32  # below this the defects no longer fit beside texture


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= MIN_SIDE for v in pair):
        raise DatasetError(f"size must be (H, W) with both sides >= {MIN_SIDE} px, got {size!r}")
    return int(pair[0]), int(pair[1])


def _kinds(defects: Mapping[str, int] | Sequence[str] | str) -> list[str]:
    """The defect kind of every defective image, in output order."""
    if isinstance(defects, str):
        defects = [defects]
    if isinstance(defects, Mapping):
        for kind, count in defects.items():
            if not isinstance(count, (int, np.integer)) or count < 0:
                raise DatasetError(f"defect count for {kind!r} must be an int >= 0, got {count!r}")
        kinds = [kind for kind, count in defects.items() for _ in range(count)]
    else:
        kinds = list(defects)
    known = list_defect_types()
    for kind in kinds:
        if kind not in known:
            raise DatasetError(f"unknown defect type {kind!r}; use one of: {', '.join(known)}")
    return kinds


def _defect_sample(kind: str, index: int, texture: str, size, seed: int) -> Sample:
    # Stream 0 is good images; each kind has its own stream, so kinds do not shift each other.
    rng = np.random.default_rng([seed, 1 + list_defect_types().index(kind), index])
    clean = make_texture(texture, size, rng)
    drawn = draw_defect(kind, clean, rng)
    image = _to_uint8(drawn.image)
    luminance_change = image.mean(axis=2) - _to_uint8(clean).mean(axis=2)
    meta = {
        "id": f"{kind}_{index:03d}",
        "texture": texture,
        "type": kind,
        **mask_geometry(drawn.mask),
        "contrast": round(float(luminance_change[drawn.mask].mean()), 1),
        "params": drawn.params,
    }
    return Sample(label=kind, image_array=image, mask_array=drawn.mask, meta=meta)


def make_synthetic(
    *,
    n_good: int,
    defects: Mapping[str, int] | Sequence[str] = (),
    size: int | tuple[int, int] = (256, 256),
    seed: int = 0,
    texture: str = "fabric",
) -> list[Sample]:
    """Make good and defective images of one surface, in memory.

    Args:
        n_good: number of defect-free images.
        defects: ``{"scratch": 3, "hole": 2}`` (counts per kind, in that order) or a list of
            kinds, one image each (``["scratch", "scratch", "hole"]``). Kinds:
            :func:`list_defect_types`.
        size: (H, W), or one int for a square; at least 32.
        seed: the draw (>= 0); the same arguments give bit-identical images.
        texture: ``"fabric"``, ``"metal"``, ``"noise"`` or ``"sample"`` (a brick photo
            shipped with scikit-image).

    Returns:
        Good samples first (``good_000``, ...), then the defective ones in the order asked,
        each kind numbered from 0 (``scratch_000``, ...). Labels are ``"good"`` and the kind.
    """
    if not isinstance(n_good, (int, np.integer)) or n_good < 0:
        raise DatasetError(f"n_good must be an int >= 0, got {n_good!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be an int >= 0, got {seed!r}")
    if texture not in list_textures():
        raise DatasetError(f"unknown texture {texture!r}; use one of: {', '.join(list_textures())}")
    size, kinds = _size(size), _kinds(defects)
    if n_good + len(kinds) == 0:
        raise DatasetError("nothing to make: ask for n_good > 0 or some defects")
    samples = []
    for i in range(n_good):
        rng = np.random.default_rng([seed, 0, i])
        image = _to_uint8(make_texture(texture, size, rng))
        samples.append(
            Sample(label=GOOD, image_array=image, meta={"id": f"good_{i:03d}", "texture": texture})
        )
    counters: dict[str, int] = {}
    for kind in kinds:
        index = counters[kind] = counters.get(kind, -1) + 1
        samples.append(_defect_sample(kind, index, texture, size, seed))
    return samples
