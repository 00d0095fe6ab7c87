"""Inspection results and the numpy post-processing shared by every execution path.

The PyTorch inspector, the exported runtime (OpenVINO / ONNX Runtime) and the daemon
all produce the same raw outputs per image - ``score``, ``anomaly_map``,
``class_logits``, then the caption evidence (``prototype_similarity``, and
``vocab_scores`` with a text-aligned backbone) - and turn them into an
:class:`InspectionResult` with :func:`postprocess`. Torch-free on purpose: decisions
are written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from defectkit.core.geometry import second_moments
from defectkit.core.labels import ANOMALY, DEFECT, GOOD

#: The graph's first three outputs, in this order, in every inspector and bundle.
CORE_OUTPUTS = ("score", "anomaly_map", "class_logits")
#: N x P: the region descriptor's similarity to each prototype (one per labelled shot),
#: which picks the nearest labelled example's note for the caption.
PROTOTYPE_SIMILARITY = "prototype_similarity"
#: N x V: cosines of the region's CLIP embedding with the vocabulary (text-aligned only).
VOCAB_SCORES = "vocab_scores"


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds, kept outside the model graph so a line can move them.

    Attributes:
        image: anomaly score at or above which an image is defective.
        pixel: anomaly-map value at or above which a pixel belongs to a defect.
        min_defect_area: connected regions smaller than this (pixels of the original
            image) are dropped from ``defects`` (they still count in the score).
    """

    image: float
    pixel: float
    min_defect_area: int = 16

    def to_dict(self) -> dict[str, float]:
        return {"image": self.image, "pixel": self.pixel, "min_defect_area": self.min_defect_area}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(float(data["image"]), float(data["pixel"]), int(data.get("min_defect_area", 16)))


@dataclass
class InspectionResult:
    """What the inspector says about one image.

    ``anomaly_map`` and ``mask`` have the original image's H x W; they are left out of
    :meth:`to_dict` (use ``include_maps=True`` for small images only).
    """

    score: float
    verdict: str  # "good" or "defect"
    label: str  # "good", a defect class, or "anomaly"
    probabilities: dict[str, float]
    threshold: float
    anomaly_map: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    defects: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    path: str | None = None
    #: This image's caption evidence from the graph (``{PROTOTYPE_SIMILARITY: P floats,
    #: VOCAB_SCORES: V floats}``) and the fitted context it refers to
    #: (:class:`~defectkit.fewshot.caption.CaptionContext`), kept so the result can be
    #: decided again at another threshold with the same caption (not in ``to_dict``).
    extras: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    caption_context: Any = field(default=None, repr=False)
    #: The inspected image (a reference, not a copy), from which compact defects' areas
    #: are read (:mod:`defectkit.fewshot.caption_size`); None where it was not kept.
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_defective(self) -> bool:
        return self.verdict == DEFECT

    @property
    def boxes(self) -> list[list[int]]:
        """[x0, y0, x1, y1] of each localised defect region (a defective verdict with no
        region above the pixel threshold has a record without a box)."""
        return [list(d["box"]) for d in self.defects if d.get("box")]

    def to_dict(self, *, include_maps: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "score": round(float(self.score), 6),
            "verdict": self.verdict,
            "label": self.label,
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "threshold": round(float(self.threshold), 6),
            "defects": self.defects,
            "caption": self.caption,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
        if include_maps:
            out["anomaly_map"] = self.anomaly_map.round(5).tolist()
            out["mask"] = self.mask.astype(int).tolist()
        return out


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
    from scipy import ndimage  # scipy ships with scikit-learn; imported lazily

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32), int(count)


def find_defects(
    amap: np.ndarray, mask: np.ndarray, *, min_area: int
) -> list[dict[str, Any]]:
    """One record per connected defect region, most severe (highest peak) first.

    Returns dicts with ``box`` (x0, y0, x1, y1; inclusive-exclusive pixels),
    ``area_px``, ``centroid`` (x, y), ``peak`` and ``mean`` anomaly.
    """
    labels, count = connected_regions(mask)
    records = []
    for _, sl, inside in regions(labels, count):
        area = int(inside.sum())
        if area < min_area:
            continue
        values = amap[sl][inside]
        _, cx, cy, *_ = second_moments(inside)
        records.append(
            {
                "box": [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop],
                "area_px": area,
                "centroid": [round(cx + sl[1].start, 2), round(cy + sl[0].start, 2)],
                "peak": round(float(values.max()), 6),
                "mean": round(float(values.mean()), 6),
            }
        )
    records.sort(key=lambda r: r["peak"], reverse=True)
    return records


def regions(labels: np.ndarray, count: int):
    """(index, bounding-box slices, region mask inside the box) of each labelled region.

    Works inside each region's box (``find_objects``), so the cost grows with the
    regions' boxes, not with the number of regions times the image.
    """
    from scipy import ndimage

    for index, sl in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if sl is not None:
            yield index, sl, labels[sl] == index


#: A defect region keeps the pixels at or above this fraction of its own peak (and above
#: the pixel threshold). The map is smooth at patch resolution, so "above the pixel
#: threshold" alone over-sizes strong defects several times; half-maximum sizes them.
REGION_FRACTION = 0.5


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


def decide_label(
    score: float, probabilities: np.ndarray, classes: Sequence[str], threshold: float
) -> tuple[str, str]:
    """(verdict, label) from the image score and the class probabilities.

    The verdict comes from the calibrated anomaly score alone (a line moves one
    threshold). The defect type is the most probable *defect* class; with no defect
    class labelled, it is "anomaly".
    """
    if score < threshold:
        return GOOD, GOOD
    defect_idx = [i for i, c in enumerate(classes) if c != GOOD]
    if not defect_idx:
        return DEFECT, ANOMALY
    best = max(defect_idx, key=lambda i: probabilities[i])
    return DEFECT, classes[best]


def postprocess(
    score: float,
    anomaly_map: np.ndarray,
    class_logits: np.ndarray,
    *,
    classes: Sequence[str],
    thresholds: Thresholds,
    image_size: tuple[int, int],
    path: str | None = None,
    timings: dict[str, float] | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    caption_context: Any = None,
    image: np.ndarray | None = None,
) -> InspectionResult:
    """Raw outputs of one image -> :class:`InspectionResult`.

    Args:
        score: image anomaly score.
        anomaly_map: h x w map at model resolution.
        class_logits: K logits, one per class in ``classes``.
        image_size: (H, W) of the original image; maps and boxes are reported there.
        extras: this image's further graph outputs by name (``PROTOTYPE_SIMILARITY``,
            ``VOCAB_SCORES``); missing ones are simply not used by the caption.
        caption_context: the :class:`~defectkit.fewshot.caption.CaptionContext` those
            outputs refer to (shot classes and notes, vocabulary); None: no notes and
            no vocabulary terms in the caption.
        image: the inspected image (original size, any format ``to_rgb`` reads); the
            caption reads compact defects' areas off its pixels. None: areas are stated
            as upper bounds (the region, blur included).
    """
    amap = resize_map(np.asarray(anomaly_map, dtype=np.float32), image_size)
    probs = softmax(np.asarray(class_logits, dtype=np.float64))
    verdict, label = decide_label(float(score), probs, classes, thresholds.image)
    mask = defect_mask(amap, thresholds.pixel) if verdict != GOOD else np.zeros(amap.shape, dtype=bool)
    defects = (
        find_defects(amap, mask, min_area=thresholds.min_defect_area) if verdict != GOOD else []
    )
    result = InspectionResult(
        score=float(score),
        verdict=verdict,
        label=label,
        probabilities={c: float(p) for c, p in zip(classes, probs, strict=True)},
        threshold=thresholds.image,
        anomaly_map=amap,
        mask=mask,
        defects=defects,
        timings=dict(timings or {}),
        path=path,
        extras={k: np.asarray(v, dtype=np.float32) for k, v in (extras or {}).items()},
        caption_context=caption_context,
        image=image,
    )
    # Captions are written here, once, for every execution path (PyTorch, runtime, daemon).
    from defectkit.fewshot.caption import describe_result  # caption imports this module

    result.defects, result.caption = describe_result(result, classes=classes)
    return result
