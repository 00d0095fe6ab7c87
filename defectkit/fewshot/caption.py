"""Captions: one structured record and one plain sentence per defect region.

Torch-free numpy, shared by the PyTorch inspector and the exported runtime, so both
describe a result in exactly the same words. Every statement is read off the
:class:`~defectkit.inspect.results.InspectionResult` (and, when given, the nearest-shot
similarities and vocabulary scores the graph returned); nothing is stated that the
result does not support:

- the type comes from the class head, hedged ("Possibly ...") below ``uncertain_below``,
  and called an "unclassified anomaly" when the head finds ``good`` more likely than
  any defect class (the verdict came from the anomaly score alone); it is evidence
  about the first (most severe) region only, because the head pools the most anomalous
  patches, so further regions are only "possibly" of that type;
- geometry is measured on the region's own pixels of ``result.mask`` (its connected
  component, not its box) with :func:`defectkit.core.geometry.mask_geometry`, the
  function that measured the synthetic ground truth, so caption and truth agree on
  conventions; millimetres only with a scale;
- a compact region's area is the defect's own, read off the image's pixels
  (:mod:`defectkit.fewshot.caption_size`): "about N px" only where the defect's edge is
  sharp, a range where it is soft, and "up to" the region's area where the pixels do
  not tell (or the result carries no image); lengths read off pixels are estimates only
  where the pixels lie inside the region, and lower bounds where they reach its edge;
  a soft-edged region whose surest pixels form a line is not called compact;
- the engineer's note only from a labelled shot of the stated class, and not when the
  class head found the region nearer the good shots;
- vocabulary terms only when a text-aligned backbone scored them.

The English lives in :mod:`defectkit.fewshot.caption_text`; records hold language-neutral
values (``"upper-left"``, ``"falling"``) so a translation changes only the sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from defectkit.core.geometry import mask_geometry, second_moments
from defectkit.errors import ConfigError
from defectkit.fewshot.caption_size import estimate_area
from defectkit.fewshot.caption_text import strings
from defectkit.fewshot.vocabulary import ATTRIBUTE, DEFECT, Vocabulary
from defectkit.inspect.results import (
    ANOMALY,
    GOOD,
    PROTOTYPE_SIMILARITY,
    VOCAB_SCORES,
    InspectionResult,
    connected_regions,
    regions,
)

#: Elongation (major / minor axis) from which a region is "elongated" and gets an
#: orientation. The anomaly map is coarser than thin defects and blurs them into bands,
#: which pulls the ratio towards 1 (a 50:1 scratch reads 3-5:1, a 5:1 crack 1.7-3), so
#: the bar is low; regions of round defects read below 1.5 (synthetic spots, holes and
#: stains: 90th percentile 1.45; chosen on seeds 0-1 of benchmarks/caption_accuracy.py).
ELONGATED = 1.75
#: The same bar for a defect's own pixels (a sharp edge, see ``region_geometry``): not
#: blurred, so higher; between spots (pixels' elongation up to 2.3) and cracks (from 2.7)
#: on seeds 0-2 of benchmarks/caption_accuracy.py.
PIXEL_ELONGATED = 2.5
#: Fewest seed pixels (a soft edge's sure core) whose shape is stated: on seeds 0-2 of
#: benchmarks/caption_accuracy.py the cores of faint cracks were 93-95 px and lines,
#: those of spots and stains that read as lines at most 24 px.
CORE_MIN_PX = 40
#: Elongation from which an elongated region is called "thin".
THIN = 4.0
#: How much longer than the defect an anomaly-map region can be (its blur at both ends):
#: a length measured on the region, not on the defect's pixels, is stated as "at least
#: length / this". Faint ends fall below the map's threshold, so such regions are often
#: shorter than the defect (soft-edged scratches: 0.49-1.14 x the true length) but
#: rarely longer by more than this (cracks and scratches up to 1.22 x; seeds 0-2 of
#: benchmarks/caption_accuracy.py).
REGION_LENGTH_OVERSHOOT = 1.25
#: Severity = score / threshold: below 1.5 "minor", below 3 "moderate", else "severe".
SEVERITY_LEVELS = ((1.5, "minor"), (3.0, "moderate"), (math.inf, "severe"))
#: Regions after the first are stated only from this peak / threshold ratio on: beside a
#: clear defect, regions barely above the threshold are mostly texture or image-border
#: response (on the synthetic benchmark 37 of 38 such regions missed the defect).
FURTHER_MIN_RATIO = 1.5
#: A centroid closer than this fraction of the image side to a 3 x 3 cell border names
#: both cells: a few pixels of localisation error must not make the place false.
BORDER_MARGIN = 0.03
#: CLIP's logit scale: vocabulary cosines x 100 -> softmax shares, as in zero-shot use.
VOCAB_LOGIT_SCALE = 100.0
#: A vocabulary term is stated only when it wins at least this share of its group.
VOCAB_MIN_SHARE = 0.5

_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")


# --------------------------------------------------------------------------- regions
def region_masks(result: InspectionResult) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The pixels of each of ``result.defects``: (crop of the region's component, (x0, y0)).

    Components of ``result.mask`` are matched to the records by box and area (what
    :func:`~defectkit.inspect.results.find_defects` wrote); a record that matches none
    (written by other code) falls back to the mask's pixels inside its box.
    """
    by_key = {
        (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop, int(inside.sum())): inside
        for _, sl, inside in regions(*connected_regions(result.mask))
    }
    out = []
    for record in localised(result.defects):
        x0, y0, x1, y1 = (int(v) for v in record["box"])
        found = by_key.get((x0, y0, x1, y1, int(record["area_px"])))
        if found is None:
            found = np.asarray(result.mask[y0:y1, x0:x1], dtype=bool)
        out.append((found, (x0, y0)))
    return out


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


def severity_level(ratio: float) -> str:
    return next(level for bound, level in SEVERITY_LEVELS if ratio < bound)


def region_geometry(
    crop: np.ndarray,
    origin: tuple[int, int],
    *,
    part_mask: np.ndarray | None,
    part_area: int,
    image_size: tuple[int, int],
    scale_mm_per_px: float | None,
    image: np.ndarray | None = None,
) -> dict[str, Any]:
    """Where, how big and which way: the geometry part of a record (JSON-able values).

    The box and centroid are already in the record (``find_defects``); this adds the
    3 x 3 cells, area (and its share of the part), major-axis length, equivalent
    diameter, elongation, shape and - for elongated regions only - orientation. For
    compact regions it adds the defect's own area read off ``image``
    (:func:`~defectkit.fewshot.caption_size.estimate_area`): ``area_estimate``
    (``"about"``, ``"between"`` or, without an image, ``"up_to"``) with
    ``area_low_px`` / ``area_high_px``; ``area_px`` stays the region's.

    Where the defect's edge is sharp (an ``"about"`` estimate), shape, orientation and
    length are the defect's own pixels' (``shape_from: "pixels"``): the map blurs a thin
    crack into a blob. Otherwise they are the region's, and an elongated region's length
    is stated as a lower bound (``length_estimate: "at_least"``, ``length_low_px``; see
    ``REGION_LENGTH_OVERSHOOT``). The pixels' length is stated as an estimate only when
    they lie inside the region; where they reach its edge (``"cut"``: the defect may go
    on beyond it, as faint scratch ends and crack branches do) it is a lower bound too,
    the smaller of the pixels' and the region's.
    """
    g = mask_geometry(crop)
    x0, y0 = origin
    cx, cy = g["centre"][0] + x0, g["centre"][1] + y0
    area = g["area_px"]
    if part_mask is not None:
        inside = int(part_mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]][crop].sum())
    else:
        inside = area
    estimate = (
        estimate_area(image, crop, origin)
        if image is not None
        else {"estimate": "up_to", "low": None, "high": area}
    )
    own = estimate["pixels"][0] if "pixels" in estimate else None  # a sharp edge
    form = mask_geometry(own) if own is not None else g
    elongated = form["elongation"] >= (PIXEL_ELONGATED if own is not None else ELONGATED)
    line = _line_core(estimate) if own is None and not elongated else None
    core = line[0] if line is not None else None
    if line is not None:  # a soft edge around a line: the region's blob is not the shape
        form, elongated = line[1], True
    shape = ("thin" if form["elongation"] >= THIN else "elongated") if elongated else "compact"
    out: dict[str, Any] = {
        "position": cells_of(cx, cy, image_size[1], image_size[0]),
        "area_px": area,
        "area_percent": round(100.0 * inside / max(part_area, 1), 3),
        "length_px": round(
            major_axis_length(next(m for m in (own, core, crop) if m is not None)), 2
        ),
        "diameter_px": round(_diameter(area), 2),
        "elongation": form["elongation"],
        "shape": shape,
        "shape_from": "pixels" if own is not None else "core" if core is not None else "region",
        "orientation_deg": form["orientation_deg"] if elongated else None,
        "orientation": orientation_word(form["orientation_deg"]) if elongated else None,
    }
    if elongated:
        out["length_from"] = out["shape_from"]
        if own is not None and not estimate.get("cut", False):
            out["length_estimate"], out["length_low_px"] = "about", out["length_px"]
        elif own is not None or core is not None:
            # The pixels reach the region's edge: the region may have cut the defect off
            # (its faint ends, a branch) and they may have run into the texture there,
            # so neither they nor the region give an estimate; both give a lower bound,
            # and the smaller is stated. So for a line core: surely the defect's pixels,
            # but not all of them.
            out["length_estimate"] = "at_least"
            region_low = major_axis_length(crop) / REGION_LENGTH_OVERSHOOT
            out["length_low_px"] = round(min(out["length_px"], region_low), 2)
        else:
            out["length_estimate"] = "at_least"
            out["length_low_px"] = round(out["length_px"] / REGION_LENGTH_OVERSHOOT, 2)
    if not elongated:
        share = inside / max(area, 1)  # of the region, the part's share
        out |= {
            "area_estimate": estimate["estimate"],
            "area_low_px": estimate["low"],
            "area_high_px": estimate["high"],
            "area_percent": round(100.0 * estimate["high"] * share / max(part_area, 1), 3),
            "diameter_px": round(_diameter(estimate["high"]), 2),
            "diameter_low_px": None
            if estimate["low"] is None
            else round(_diameter(estimate["low"]), 2),
        }
    if scale_mm_per_px is not None:
        key = "length" if elongated else "diameter"
        out[f"{key}_mm"] = round(out[f"{key}_px"] * scale_mm_per_px, 3)
        if elongated:
            out["length_low_mm"] = round(out["length_low_px"] * scale_mm_per_px, 3)
        if not elongated and out["diameter_low_px"] is not None:
            out["diameter_low_mm"] = round(out["diameter_low_px"] * scale_mm_per_px, 3)
    return out


def _line_core(estimate: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The seeds' pixels of a soft-edged estimate and their ``mask_geometry`` when they
    form a line, else None.

    They are surely the defect's, so a line of them means the defect is not compact
    even where the map blurred it into a round region (a faint crack on a bright
    texture). Only from ``CORE_MIN_PX`` pixels on: a few specks of texture or of a
    spot's dark middle are no shape.
    """
    if "core" not in estimate:
        return None
    core = estimate["core"][0]
    if core.sum() < CORE_MIN_PX:
        return None
    geometry = mask_geometry(core)
    return (core, geometry) if geometry["elongation"] >= PIXEL_ELONGATED else None


def _diameter(area: float) -> float:
    """Equivalent diameter: of the disc with this area."""
    return math.sqrt(4.0 * area / math.pi)


# --------------------------------------------------------------------------- evidence
def nearest_note(
    similarity: Sequence[float], labels: Sequence[str], notes: Sequence[str | None], label: str
) -> dict[str, Any] | None:
    """The note of the most similar labelled shot of class ``label`` that has one.

    Args:
        similarity: P similarities (larger = nearer) of this image's region descriptor
            to the prototypes: the graph's ``prototype_similarity`` row.
        labels, notes: each prototype's shot class and note (None or "" for none), in
            prototype order.

    Returns:
        ``{"text", "shot", "similarity"}`` or None when no shot of that class has a note.
    """
    if not len(similarity) == len(labels) == len(notes):
        raise ValueError(
            f"{len(similarity)} similarities for {len(labels)} shot labels and {len(notes)} notes"
        )
    best = None
    for index, (sim, shot_label, note) in enumerate(zip(similarity, labels, notes, strict=True)):
        if shot_label == label and note and (best is None or sim > similarity[best]):
            best = index
    if best is None:
        return None
    return {"text": str(notes[best]), "shot": best, "similarity": round(float(similarity[best]), 6)}


def vocabulary_match(
    scores: Sequence[float], vocabulary: Vocabulary | Sequence[str]
) -> dict[str, Any] | None:
    """Vocabulary cosines (V) -> the winning defect term and attribute, with their shares.

    Shares are a softmax of ``VOCAB_LOGIT_SCALE`` x cosine within each group (terms,
    attributes); a winner below ``VOCAB_MIN_SHARE`` is not stated (``None``). Raw
    cosines are kept in ``scores``.
    """
    if not isinstance(vocabulary, Vocabulary):
        vocabulary = Vocabulary.from_lines(vocabulary)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size != len(vocabulary):
        raise ValueError(f"{scores.size} vocabulary scores for {len(vocabulary)} entries")
    if scores.size == 0:
        return None
    kinds = np.array(vocabulary.kinds)
    out: dict[str, Any] = {
        "scores": {n: round(float(s), 6) for n, s in zip(vocabulary.names, scores, strict=True)}
    }
    for kind, key in ((DEFECT, "term"), (ATTRIBUTE, "attribute")):
        idx = np.flatnonzero(kinds == kind)
        out[key], out[f"{key}_share"] = None, None
        if idx.size:
            z = VOCAB_LOGIT_SCALE * scores[idx]
            share = np.exp(z - z.max())
            share /= share.sum()
            best = int(share.argmax())
            if share[best] >= VOCAB_MIN_SHARE:
                out[key] = vocabulary.names[idx[best]]
                out[f"{key}_share"] = round(float(share[best]), 4)
    return out


def _type_evidence(result: InspectionResult, uncertain_below: float) -> dict[str, Any]:
    """Type, its probability, whether it is hedged, and whether ``good`` outscored it."""
    if result.label == ANOMALY or result.label not in result.probabilities:
        return {"type": result.label, "confidence": None, "uncertain": False, "nearer_good": False}
    p = float(result.probabilities[result.label])
    return {
        "type": result.label,
        "confidence": round(p, 4),
        "uncertain": p < uncertain_below,
        "nearer_good": float(result.probabilities.get(GOOD, 0.0)) > p,
    }


# --------------------------------------------------------------------------- context
@dataclass(frozen=True)
class CaptionContext:
    """What a caption needs beside one image's outputs: fixed once an inspector is fitted.

    Travels as plain JSON in a model folder's ``config.json`` and a bundle's manifest
    (:meth:`to_dict`), so the runtime cites notes and names terms without torch.

    Attributes:
        shot_labels: the class of each prototype's labelled shot, in prototype order
            (the columns of the graph's ``prototype_similarity``).
        shot_notes: each of those shots' note, None where the engineer wrote none.
        vocabulary: entries in file form (``"scratch"``, ``"attribute: dark"``) in the
            order of ``vocab_scores``; empty without a text-aligned backbone.
    """

    shot_labels: tuple[str, ...] = ()
    shot_notes: tuple[str | None, ...] = ()
    vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.shot_labels) != len(self.shot_notes):
            raise ConfigError(
                f"{len(self.shot_labels)} shot classes but {len(self.shot_notes)} shot notes"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shots": [
                {"label": label, "note": note}
                for label, note in zip(self.shot_labels, self.shot_notes, strict=True)
            ],
            "vocabulary": list(self.vocabulary),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CaptionContext:
        """Read :meth:`to_dict`'s JSON; missing keys (older folders) mean none."""
        data = data or {}
        shots = list(data.get("shots") or ())
        return cls(
            shot_labels=tuple(str(s["label"]) for s in shots),
            shot_notes=tuple((str(s["note"]) if s.get("note") else None) for s in shots),
            vocabulary=tuple(str(v) for v in data.get("vocabulary") or ()),
        )


def describe_result(
    result: InspectionResult, *, classes: Sequence[str], **options: Any
) -> tuple[list[dict[str, Any]], str]:
    """:func:`describe` with the evidence the result carries (``result.extras`` read
    through ``result.caption_context``): what :func:`~defectkit.inspect.results.postprocess`
    calls on every execution path. ``options`` go to :func:`describe`."""
    context: CaptionContext | None = result.caption_context
    extras = result.extras or {}
    notes = vocab_scores = None
    vocabulary: Sequence[str] = ()
    similarity = extras.get(PROTOTYPE_SIMILARITY)
    if context is not None and similarity is not None and context.shot_labels:
        notes = {
            "labels": context.shot_labels,
            "notes": context.shot_notes,
            "similarity": np.asarray(similarity, dtype=np.float64).reshape(-1).tolist(),
        }
    if context is not None and context.vocabulary and extras.get(VOCAB_SCORES) is not None:
        vocab_scores, vocabulary = extras[VOCAB_SCORES], context.vocabulary
    return describe(
        result, classes=classes, notes=notes, vocab_scores=vocab_scores,
        vocabulary=vocabulary or None, **options,
    )  # fmt: skip


# --------------------------------------------------------------------------- describe
def describe(
    result: InspectionResult,
    *,
    classes: Sequence[str],
    notes: Mapping[str, Sequence] | None = None,
    scale_mm_per_px: float | None = None,
    part_mask: np.ndarray | None = None,
    vocab_scores: Sequence[float] | None = None,
    vocabulary: Vocabulary | Sequence[str] | None = None,
    uncertain_below: float = 0.6,
    language: str = "en",
) -> tuple[list[dict[str, Any]], str]:
    """Structured records (most severe region first) and the caption sentence.

    Args:
        result: what :func:`~defectkit.inspect.results.postprocess` returned.
        classes: the inspector's class names (``good`` first), for checking.
        notes: ``{"labels": P shot classes, "notes": P notes or None, "similarity": P
            similarities of this image}`` (see :func:`nearest_note`); None: no notes cited.
        scale_mm_per_px: millimetres per pixel of the original image; None: no mm.
        part_mask: H x W bool, the part's pixels (percentages are of the part);
            None: the whole image is the part.
        vocab_scores: V cosines from the caption head (text-aligned backbones only).
        vocabulary: the V entries those scores belong to.
        uncertain_below: class probability below which the type is hedged.
        language: a key of :data:`defectkit.fewshot.caption_text.LANGUAGES`.

    Returns:
        ``(records, sentence)``: one record per ``result.defects`` entry (its keys plus
        the caption's facts and its own ``sentence``), or one ``localised: False``
        record for a defective verdict without a region; ``sentence`` joins the stated
        records' sentences, or says "No defect found" for a good verdict. Regions after
        the first whose peak is below ``FURTHER_MIN_RATIO`` x the image threshold are
        kept as records but not stated (``stated: False``, ``sentence: None``).
    """
    text = strings(language)
    if result.verdict == GOOD:
        return [], text["no_defect"].format(score=result.score, threshold=result.threshold)
    part_mask = _check_inputs(result, classes, scale_mm_per_px, part_mask)
    evidence = {**_type_evidence(result, uncertain_below), "note": None, "vocabulary": None}
    # No note when the class head found the region nearer the good shots: "like the
    # labelled example" would claim a likeness the result does not support.
    if notes is not None and result.label != ANOMALY and not evidence["nearer_good"]:
        evidence["note"] = nearest_note(
            notes["similarity"], notes["labels"], notes["notes"], result.label
        )
    if vocab_scores is not None and vocabulary is not None and len(vocabulary):
        evidence["vocabulary"] = vocabulary_match(vocab_scores, vocabulary)

    records = _region_records(result, evidence, part_mask, scale_mm_per_px, _image_of(result))
    if not records:  # a defective verdict without a region (global defect, tiny regions)
        ratio = result.score / max(result.threshold, 1e-12)  # a threshold of 0 is legal
        records = [{**evidence, "classified": True, "localised": False, "stated": True,
                    "severity": severity_level(ratio), "severity_ratio": round(ratio, 3)}]  # fmt: skip
    for record in records:
        record["sentence"] = sentence_of(record, result, text) if record["stated"] else None
    return records, " ".join(r["sentence"] for r in records if r["stated"])


def _check_inputs(result, classes, scale_mm_per_px, part_mask) -> np.ndarray | None:
    if result.label not in (*classes, ANOMALY):
        raise ConfigError(f"result label {result.label!r} is not among the classes {list(classes)}")
    if scale_mm_per_px is not None and not scale_mm_per_px > 0:
        raise ConfigError(
            f"the scale must be a positive number of mm per pixel, got {scale_mm_per_px}"
        )
    if part_mask is None:
        return None
    part_mask = np.asarray(part_mask, dtype=bool)
    if part_mask.shape != result.mask.shape or not part_mask.any():
        raise ConfigError(
            f"the part mask must be a non-empty mask of the image's size {result.mask.shape}, "
            f"got shape {part_mask.shape}"
        )
    return part_mask


def localised(defects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records with a region (a box); describing a described result skips the
    "not localised" record it holds, so :func:`describe` can be called twice."""
    return [d for d in defects if "box" in d]


def _image_of(result: InspectionResult) -> np.ndarray | None:
    """The inspected image as H x W x 3 uint8 when the result carries it (same size as
    its mask), else None: compact areas are then stated as upper bounds only."""
    image = getattr(result, "image", None)
    if image is None or np.asarray(image).shape[:2] != result.mask.shape:
        return None
    from defectkit.core.images import to_rgb

    return to_rgb(image)


def _region_records(result, evidence, part_mask, scale_mm_per_px, image) -> list[dict[str, Any]]:
    """One record per region; class, note and vocabulary evidence go to the first only."""
    size = result.mask.shape
    part_area = int(part_mask.sum()) if part_mask is not None else size[0] * size[1]
    records = []
    for rank, (defect, (crop, origin)) in enumerate(
        zip(localised(result.defects), region_masks(result), strict=True)
    ):
        primary = rank == 0
        ratio = (result.score if primary else float(defect["peak"])) / max(
            result.threshold, 1e-12
        )  # a threshold of 0 is legal
        geometry = region_geometry(
            crop, origin, part_mask=part_mask, part_area=part_area, image_size=size,
            scale_mm_per_px=scale_mm_per_px, image=image,
        )  # fmt: skip
        records.append(
            {
                **defect,
                **evidence,
                **({} if primary else {"note": None, "vocabulary": None}),
                "classified": primary,
                "localised": True,
                "stated": primary or ratio >= FURTHER_MIN_RATIO,
                **geometry,
                "severity": severity_level(ratio),
                "severity_ratio": round(ratio, 3),
            }
        )
    return records


# --------------------------------------------------------------------------- words
def _type_phrase(record: dict[str, Any], text: Mapping[str, Any]) -> str:
    name = str(record["type"]).replace("_", " ")
    values = {"type": name, "Type": name[:1].upper() + name[1:]}
    if record["type"] == ANOMALY:
        key = "type_unclassified" if record["classified"] else "type_secondary_unclassified"
        return text[key].format(**values)
    if not record["classified"]:
        return text["type_secondary"].format(**values)
    if record["nearer_good"]:
        key = "type_near_good"
    else:
        key = "type_uncertain" if record["uncertain"] else "type_confident"
    return text[key].format(**values, confidence=100.0 * record["confidence"])


def _size_phrase(record: dict[str, Any], text: Mapping[str, Any]) -> str:
    if record["shape"] != "compact":
        how = record.get("length_estimate", "about")
        if "length_mm" in record:
            return text[f"length_{how}_mm"].format(
                length=record.get("length_low_mm", record["length_mm"])
            )
        return text[f"length_{how}_px"].format(
            length=record.get("length_low_px", record["length_px"])
        )
    how = record.get("area_estimate", "up_to")
    unit = "mm" if "diameter_mm" in record else "px"
    values = {"percent": record["area_percent"]}
    if unit == "mm":
        values |= {"diameter": record["diameter_mm"], "low": record.get("diameter_low_mm")}
        values["high"] = values["diameter"]
    else:
        values |= {"area": record["area_high_px"], "low": record["area_low_px"]}
        values["high"] = values["area"]
    return text[f"area_{how}_{unit}"].format(**values)


def _vocab_phrase(vocab: dict[str, Any] | None, text: Mapping[str, Any]) -> str | None:
    if not vocab:
        return None
    terms = [vocab[k] for k in ("term", "attribute") if vocab.get(k)]
    if not terms:
        return None
    listed = text["vocabulary_separator"].join(
        text["vocabulary_term"].format(term=t) for t in terms
    )
    return text["vocabulary"].format(terms=listed)


def sentence_of(record: dict[str, Any], result: InspectionResult, text: Mapping[str, Any]) -> str:
    """One sentence for one record, in the language of ``text``."""
    parts = [_type_phrase(record, text)]
    if record["localised"]:
        parts.append(text["between_cells"].join(text["cells"][c] for c in record["position"]))
        parts.append(_size_phrase(record, text))
        orientation = text["orientation"].get(record["orientation"] or "", "")
        parts.append(text["shape"][record["shape"]].format(orientation=orientation))
    else:
        parts.append(text["not_localised"].format(score=result.score, threshold=result.threshold))
    level = text["severity_levels"][record["severity"]]
    parts.append(text["severity"].format(level=level, ratio=record["severity_ratio"]))
    vocab = _vocab_phrase(record.get("vocabulary"), text)
    if vocab:
        parts.append(vocab)
    sentence = text["separator"].join(parts)
    if record.get("note"):
        sentence += text["note_separator"] + text["note"].format(note=record["note"]["text"])
    return sentence + text["end"]
