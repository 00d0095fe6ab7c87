"""One image's raw outputs -> verdict, label, mask and regions: the first pure step.

:func:`decide` needs no model: re-thresholding a result is ``decide(result.raw,
new_thresholds, classes)``. :func:`defectkit.core.caption.describe` is the second step,
the words. Both run on every execution path (PyTorch, ONNX Runtime, OpenVINO, the
daemon), so a verdict is computed the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from defectkit.core.geometry import second_moments
from defectkit.core.labels import ANOMALY, DEFECT, GOOD
from defectkit.core.results import RawOutputs, Region, Thresholds

#: A defect region keeps the pixels at or above this fraction of its own peak (and above
#: the pixel threshold). The map is smooth at patch resolution, so "above the pixel
#: threshold" alone over-sizes strong defects several times; half-maximum sizes them.
REGION_FRACTION = 0.5


@dataclass
class Decision:
    """What the thresholds make of one image's raw outputs (no words yet).

    ``anomaly_map`` and ``mask`` are at the original image's size; ``regions`` are the
    mask's connected regions of at least ``thresholds.min_defect_area`` pixels, most
    severe (highest peak) first, and empty for a good verdict.
    """

    score: float
    verdict: str
    label: str
    probabilities: dict[str, float]
    thresholds: Thresholds
    classes: tuple[str, ...]
    anomaly_map: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    regions: list[Region] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        return self.thresholds.image

    @property
    def image_size(self) -> tuple[int, int]:
        return self.mask.shape


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def resize_map(amap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an h x w float map to ``size`` = (H, W) bilinearly (Pillow, float32)."""
    h, w = size
    if amap.shape == (h, w):
        return amap.astype(np.float32, copy=False)
    img = Image.fromarray(amap.astype(np.float32), mode="F")
    return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32)


def connected_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 8-connected regions of a bool mask -> (labels H x W int32, count)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32), int(count)


def regions(labels: np.ndarray, count: int) -> Iterator[tuple[int, tuple[slice, slice], np.ndarray]]:
    """(index, bounding-box slices, region mask inside the box) of each labelled region.

    Works inside each region's box (``find_objects``), so the cost grows with the
    regions' boxes, not with the number of regions times the image.
    """
    from scipy import ndimage

    for index, sl in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if sl is not None:
            yield index, sl, labels[sl] == index


def defect_mask(amap: np.ndarray, pixel_threshold: float) -> np.ndarray:
    """H x W map -> bool mask: above the threshold and above half of the region's peak."""
    mask = amap >= pixel_threshold
    labels, count = connected_regions(mask)
    if count == 0:
        return mask
    cut = np.full(count + 1, np.inf, dtype=np.float64)
    for index, sl, inside in regions(labels, count):
        cut[index] = max(pixel_threshold, REGION_FRACTION * float(amap[sl][inside].max()))
    return mask & (amap >= cut[labels])


def find_regions(amap: np.ndarray, mask: np.ndarray, *, min_area: int) -> list[Region]:
    """One :class:`Region` per connected region of ``mask`` with at least ``min_area``
    pixels, most severe (highest peak) first."""
    labels, count = connected_regions(mask)
    found = []
    for _, sl, inside in regions(labels, count):
        area = int(inside.sum())
        if area < min_area:
            continue
        values = amap[sl][inside]
        _, cx, cy, *_ = second_moments(inside)
        found.append(
            Region(
                box=(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop),
                area_px=area,
                centroid=(round(cx + sl[1].start, 2), round(cy + sl[0].start, 2)),
                peak=round(float(values.max()), 6),
                mean=round(float(values.mean()), 6),
                pixels=inside,
            )
        )
    found.sort(key=lambda r: r.peak, reverse=True)
    return found


def nearest_defect(probabilities: Sequence[float], classes: Sequence[str]) -> str | None:
    """The defect class (not ``good``) the class head ranks first; None without one."""
    defect_idx = [i for i, c in enumerate(classes) if c != GOOD]
    if not defect_idx:
        return None
    return classes[max(defect_idx, key=lambda i: probabilities[i])]


def names_type(probabilities: Mapping[str, float], label: str) -> bool:
    """Whether the class head backs ``label`` as a defect's type: it ranks it above ``good``.

    A defect verdict is named after the nearest labelled type either way
    (:func:`decide_label`); where the head does not back it, the result says so
    (``nearer_good`` in the caption's evidence, the caption's words and the app's class
    line all read it from here).
    """
    if label not in probabilities or label == GOOD:
        return False
    return float(probabilities[label]) >= float(probabilities.get(GOOD, 0.0))


def decide_label(
    score: float, probabilities: np.ndarray, classes: Sequence[str], threshold: float
) -> tuple[str, str]:
    """(verdict, label) from the image score and the class probabilities.

    The verdict comes from the calibrated anomaly score alone (a line moves one
    threshold). A defect is then named after the defect class the class head ranks
    first, the nearest labelled type, even where the head ranks ``good`` higher still:
    the score has already said it is no good part, and the engineer labelled the types
    to have defects sorted into them. How sure the head is travels with the result (the
    probabilities; ``nearer_good`` and a hedged caption where :func:`names_type` does
    not back the type). With no defect class labelled, a defect is ``ANOMALY``.
    """
    if score < threshold:
        return GOOD, GOOD
    nearest = nearest_defect(probabilities, classes)
    return DEFECT, ANOMALY if nearest is None else nearest


def decide(
    raw: RawOutputs,
    thresholds: Thresholds,
    classes: Sequence[str],
    *,
    image_size: tuple[int, int] | None = None,
    has_verdict: bool = True,
) -> Decision:
    """One image's raw outputs -> :class:`Decision`.

    Args:
        raw: one image's outputs (:meth:`RawOutputs.at`): score, h x w map, K logits.
        thresholds: where the verdict and the mask are cut.
        classes: the K class names (``good`` first).
        image_size: (H, W) of the original image; the map, mask and regions are
            reported there. Default: the map's own size.
        has_verdict: False for a type-only model (fitted without good shots): the
            verdict is None, the label the most probable class, and there is no mask.
    """
    amap = np.asarray(raw.anomaly_map, dtype=np.float32)
    amap = resize_map(amap, tuple(image_size) if image_size is not None else amap.shape)
    probs = softmax(np.asarray(raw.class_logits, dtype=np.float64))
    score = float(raw.score)
    if not has_verdict:
        verdict, label = None, classes[int(np.argmax(probs))]
    else:
        verdict, label = decide_label(score, probs, classes, thresholds.image)
    if verdict != DEFECT:
        mask, found = np.zeros(amap.shape, dtype=bool), []
    else:
        mask = defect_mask(amap, thresholds.pixel)
        found = find_regions(amap, mask, min_area=thresholds.min_defect_area)
    return Decision(
        score=score,
        verdict=verdict,
        label=label,
        probabilities={c: float(p) for c, p in zip(classes, probs, strict=True)},
        thresholds=thresholds,
        classes=tuple(classes),
        anomaly_map=amap,
        mask=mask,
        regions=found,
    )
