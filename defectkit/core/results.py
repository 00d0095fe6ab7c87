"""Result types shared by every execution path: raw outputs, thresholds, regions, records.

The PyTorch model and every bundle engine return :class:`RawOutputs`; :mod:`.decide`
turns one image's raw outputs into a verdict, a mask and :class:`Region` s;
:mod:`.caption` describes them as :class:`DefectRecord` s; an :class:`InspectionResult`
carries all of it, and its :meth:`~InspectionResult.to_dict` is the JSON the CLI, the
daemon and the results store write. Typed fields instead of dicts with optional keys:
a field that does not apply is ``None`` and ``to_dict`` leaves it out where the JSON
always has.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from defectkit.core.labels import DEFECT

Array = Any  # numpy arrays here; torch tensors while InspectorModel.forward runs


class RawOutputs(NamedTuple):
    """What the graph returns, batched (or one image's, see :meth:`at`).

    The field names are the exported graph's output names, in this order; a bundle's
    manifest lists the ones its graph has.
    """

    score: Array  # N: image anomaly score, calibrated so 1.0 = the most unusual good shot
    anomaly_map: Array  # N x H x W at the model's input size
    class_logits: Array  # N x K, one per class (``good`` first)
    prototype_similarity: Array  # N x P, one per labelled shot (larger = nearer)
    vocab_scores: Array | None = None  # N x V, text-aligned backbones only

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the outputs present (``vocab_scores`` only with a vocabulary)."""
        return tuple(n for n, v in zip(self._fields, self, strict=True) if v is not None)

    def present(self) -> tuple[Array, ...]:
        """The outputs present, in :attr:`names` order (what an exported graph returns)."""
        return tuple(v for v in self if v is not None)

    @classmethod
    def from_named(cls, outputs: dict[str, Array]) -> RawOutputs:
        """Outputs by name -> RawOutputs (names the graph lacks stay at their default)."""
        return cls(**outputs)

    def at(self, index: int) -> RawOutputs:
        """One image's outputs: ``score`` a scalar, ``anomaly_map`` H x W, and so on."""
        return RawOutputs(*(None if v is None else v[index] for v in self))

    def map(self, fn) -> RawOutputs:
        """``fn`` applied to every output present."""
        return RawOutputs(*(None if v is None else fn(v) for v in self))

    @classmethod
    def concat(cls, parts: list[RawOutputs]) -> RawOutputs:
        """Batches -> one batch (numpy)."""
        return cls(
            *(
                None if values[0] is None else np.concatenate(values)
                for values in zip(*parts, strict=True)
            )
        )


class TileOutputs(NamedTuple):
    """What the exported graph returns for a batch of tiles (format 3).

    The field names are the graph's output names; a field is None where the model has
    no such output (no good shots: no ``distance``; no labelled defect patches: no
    ``defect_distance``; no text tower: no ``embed``). Grids are the tile's patch grid.
    """

    features: Array  # N x D x h x w standardised patch features
    distance: Array | None = None  # N x h x w distance to the nearest good patch
    defect_distance: Array | None = None  # N x h x w distance to the nearest defect patch
    embed: Array | None = None  # N x C x h' x w' text-space patch embeddings

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, v in zip(self._fields, self, strict=True) if v is not None)

    def present(self) -> tuple[Array, ...]:
        return tuple(v for v in self if v is not None)

    def map(self, fn) -> TileOutputs:
        return TileOutputs(*(None if v is None else fn(v) for v in self))

    @classmethod
    def concat(cls, parts: list[TileOutputs]) -> TileOutputs:
        return cls(*(None if vs[0] is None else np.concatenate(vs) for vs in zip(*parts, strict=True)))


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

    def with_image(self, image: float) -> Thresholds:
        """The image threshold moved; the pixel threshold follows it down.

        The one threshold rule: pixel <= image, so a defective verdict at a lowered
        threshold still shows the region that made it (fitting sets pixel the same way).
        """
        image = float(image)
        return replace(self, image=image, pixel=min(self.pixel, image))

    def moved(
        self, image: float | None = None, pixel: float | None = None,
        min_defect_area: int | None = None,
    ) -> Thresholds:  # fmt: skip
        """What every threshold setter calls: :meth:`with_image`, then an explicit
        ``pixel`` or ``min_defect_area`` where given."""
        out = self if image is None else self.with_image(image)
        if pixel is not None:
            out = replace(out, pixel=float(pixel))
        if min_defect_area is not None:
            out = replace(out, min_defect_area=int(min_defect_area))
        return out

    def to_dict(self) -> dict[str, float]:
        return {"image": self.image, "pixel": self.pixel, "min_defect_area": self.min_defect_area}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(float(data["image"]), float(data["pixel"]), int(data.get("min_defect_area", 16)))


@dataclass(frozen=True)
class Region:
    """One connected defect region of a result's mask, in the original image's pixels.

    Attributes:
        box: (x0, y0, x1, y1), end exclusive.
        area_px: pixels of the region.
        centroid: (x, y) of its pixels.
        peak, mean: the anomaly map's largest and mean value over it.
        pixels: the region's own pixels inside its box (bool, box-sized).
    """

    box: tuple[int, int, int, int]
    area_px: int
    centroid: tuple[float, float]
    peak: float
    mean: float
    pixels: np.ndarray = field(repr=False, compare=False)

    @property
    def origin(self) -> tuple[int, int]:
        return self.box[0], self.box[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "area_px": self.area_px,
            "centroid": list(self.centroid),
            "peak": self.peak,
            "mean": self.mean,
        }


@dataclass(frozen=True)
class NoteMatch:
    """The engineer's note of the nearest labelled shot of the stated class."""

    text: str
    shot: int  # its index in prototype order
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "shot": self.shot, "similarity": self.similarity}


@dataclass(frozen=True)
class VocabularyMatch:
    """Vocabulary cosines and the winning term and attribute (None below the bar)."""

    scores: dict[str, float]
    term: str | None
    term_share: float | None
    attribute: str | None
    attribute_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": dict(self.scores),
            "term": self.term,
            "term_share": self.term_share,
            "attribute": self.attribute,
            "attribute_share": self.attribute_share,
        }


#: Keys of :class:`RegionGeometry` written by ``to_dict`` for every region, in order.
_GEOMETRY_KEYS = (
    "position", "area_percent", "length_px", "diameter_px", "elongation", "shape",
    "shape_from", "orientation_deg", "orientation",
)  # fmt: skip
_ELONGATED_KEYS = ("length_from", "length_estimate", "length_low_px")
_COMPACT_KEYS = ("area_estimate", "area_low_px", "area_high_px", "diameter_low_px")
_MM_KEYS = ("length_mm", "length_low_mm", "diameter_mm", "diameter_low_mm")


@dataclass
class RegionGeometry:
    """Where, how big and which way (see :func:`defectkit.core.caption.region_geometry`).

    ``length_*`` beyond ``length_px`` apply to elongated regions, ``area_*`` and
    ``diameter_low_px`` to compact ones, ``*_mm`` only with a scale; None otherwise.
    """

    position: list[str]
    area_px: int
    area_percent: float
    length_px: float
    diameter_px: float
    elongation: float
    shape: str  # "thin" | "elongated" | "compact"
    shape_from: str  # "pixels" | "core" | "region"
    orientation_deg: float | None
    orientation: str | None
    length_from: str | None = None
    length_estimate: str | None = None  # "about" | "at_least"
    length_low_px: float | None = None
    area_estimate: str | None = None  # "about" | "between" | "up_to"
    area_low_px: int | None = None
    area_high_px: int | None = None
    diameter_low_px: float | None = None
    length_mm: float | None = None
    length_low_mm: float | None = None
    diameter_mm: float | None = None
    diameter_low_mm: float | None = None

    @property
    def compact(self) -> bool:
        return self.shape == "compact"

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _GEOMETRY_KEYS}
        out |= {k: getattr(self, k) for k in (_COMPACT_KEYS if self.compact else _ELONGATED_KEYS)}
        out |= {k: getattr(self, k) for k in _MM_KEYS if getattr(self, k) is not None}
        return out


@dataclass
class DefectRecord:
    """What the caption states about one region (or about a region-less defect).

    The type evidence (``type`` to ``vocabulary``) is about the first region only,
    because the class head pools the most anomalous patches; further regions carry
    ``note``/``vocabulary`` None and ``classified`` False. ``type`` is the result's label;
    ``nearer_good`` says the class head found the region nearer the good shots than to
    that type (the nearest labelled one), so the caption hedges it.
    """

    type: str
    confidence: float | None
    uncertain: bool
    nearer_good: bool
    note: NoteMatch | None
    vocabulary: VocabularyMatch | None
    classified: bool
    localised: bool
    stated: bool  # False: a weak further region, kept but not in the caption
    severity: str  # "minor" | "moderate" | "severe"
    severity_ratio: float
    region: Region | None = None  # None: a defective verdict without a region
    geometry: RegionGeometry | None = None
    sentence: str | None = None

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        return None if self.region is None else self.region.box

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (keys in a fixed order; region and geometry keys only when
        localised)."""
        out = self.region.to_dict() if self.region is not None else {}
        out |= {
            "type": self.type,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "nearer_good": self.nearer_good,
            "note": None if self.note is None else self.note.to_dict(),
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
            "classified": self.classified,
            "localised": self.localised,
            "stated": self.stated,
        }
        if self.geometry is not None:
            out |= self.geometry.to_dict()
        out |= {
            "severity": self.severity,
            "severity_ratio": self.severity_ratio,
            "sentence": self.sentence,
        }
        return out


@dataclass
class InspectionResult:
    """What the inspector says about one image.

    ``anomaly_map`` and ``mask`` have the original image's H x W; they are left out of
    :meth:`to_dict` (use ``include_maps=True`` for small images only). ``raw`` keeps this
    image's raw outputs, so the result can be decided again at other thresholds with
    :func:`defectkit.core.decide.decide` without running the model.
    """

    score: float  # nan for a type-only model
    verdict: str | None  # GOOD or DEFECT; None for a type-only model (no verdict exists)
    label: str  # GOOD, the nearest defect class, or ANOMALY without one (see decide_label)
    probabilities: dict[str, float]
    threshold: float
    anomaly_map: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    defects: list[DefectRecord] = field(default_factory=list)
    caption: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    path: str | None = None
    raw: RawOutputs | None = field(default=None, repr=False)
    #: (H, W) of the inspected image.
    image_size: tuple[int, int] | None = None
    #: The inspected image (a reference, not a copy), from which compact defects' areas
    #: were read; None where it was not kept.
    image: np.ndarray | None = field(default=None, repr=False)
    #: "inspect" (a verdict from the anomaly score) or "type_only" (defect sorting: a
    #: model fitted without good shots says which type, never whether it is defective).
    mode: str = "inspect"

    @property
    def is_defective(self) -> bool:
        return self.verdict == DEFECT

    @property
    def boxes(self) -> list[list[int]]:
        """[x0, y0, x1, y1] of each localised defect region (a defective verdict with no
        region above the pixel threshold has a record without a box)."""
        return [list(d.box) for d in self.defects if d.box is not None]

    def to_dict(self, *, include_maps: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "mode": self.mode,
            "score": None if self.mode == "type_only" else round(float(self.score), 6),
            "verdict": self.verdict,
            "label": self.label,
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "threshold": round(float(self.threshold), 6),
            "defects": [d.to_dict() for d in self.defects],
            "caption": self.caption,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
        if include_maps:
            out["anomaly_map"] = self.anomaly_map.round(5).tolist()
            out["mask"] = self.mask.astype(int).tolist()
        return out
