"""Captions: one structured record and one plain sentence per defect region.

The second pure step after :func:`defectkit.core.decide.decide`, shared by the PyTorch
inspector and every bundle engine, so both describe a result in exactly the same words.
Every statement is read off the :class:`~defectkit.core.decide.Decision` and the raw
outputs (the nearest-shot similarities and vocabulary scores the graph returned);
nothing is stated that the result does not support:

- the type comes from the class head, hedged ("Possibly ...") below ``uncertain_below``
  and when the head finds ``good`` more likely than any defect class (the verdict came
  from the anomaly score alone; the type is then the nearest labelled one); it is evidence
  about the first (most severe) region only, because the head pools the most anomalous
  patches, so further regions are only "possibly" of that type;
- geometry is measured on the region's own pixels (:mod:`.geometry`); millimetres only
  with a scale;
- a compact region's area is the defect's own, read off the image's pixels
  (:mod:`.size`): "about N px" only where the defect's edge is sharp, a range where it
  is soft, and "up to" the region's area where the pixels do not tell (or no image was
  given); lengths read off pixels are estimates only where the pixels lie inside the
  region, and lower bounds where they reach its edge; a soft-edged region whose surest
  pixels form a line is not called compact;
- the engineer's note only from a labelled shot of the stated class, and not when the
  class head found the region nearer the good shots;
- vocabulary terms only when a text-aligned backbone scored them.

The English lives in :mod:`.text`; records hold language-neutral values
(``"upper-left"``, ``"falling"``) so a translation changes only the sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from defectkit.core.caption.context import CaptionContext
from defectkit.core.caption.evidence import nearest_note, type_evidence, vocabulary_match
from defectkit.core.caption.geometry import region_geometry
from defectkit.core.caption.text import strings
from defectkit.core.decide import Decision
from defectkit.core.images import to_rgb
from defectkit.core.labels import ANOMALY, GOOD
from defectkit.core.results import DefectRecord, RawOutputs
from defectkit.errors import ConfigError

#: Severity = score / threshold: below 1.5 "minor", below 3 "moderate", else "severe".
SEVERITY_LEVELS = ((1.5, "minor"), (3.0, "moderate"), (math.inf, "severe"))
#: Regions after the first are stated only from this peak / threshold ratio on: beside a
#: clear defect, regions barely above the threshold are mostly texture or image-border
#: response (see benchmarks/results/tuning.md).
FURTHER_MIN_RATIO = 1.5


def severity_level(ratio: float) -> str:
    return next(level for bound, level in SEVERITY_LEVELS if ratio < bound)


def describe(
    decision: Decision,
    raw: RawOutputs | None = None,
    context: CaptionContext | None = None,
    image: np.ndarray | None = None,
    *,
    scale_mm_per_px: float | None = None,
    part_mask: np.ndarray | None = None,
    uncertain_below: float = 0.6,
    language: str = "en",
) -> tuple[list[DefectRecord], str]:
    """Structured records (most severe region first) and the caption sentence.

    Args:
        decision: what :func:`~defectkit.core.decide.decide` made of the image.
        raw: this image's raw outputs; its ``prototype_similarity`` picks the nearest
            labelled shot's note, its ``vocab_scores`` the vocabulary terms. None: neither.
        context: the shots (classes, notes) and vocabulary those outputs refer to; None:
            no notes and no vocabulary terms.
        image: the inspected image (original size, any format ``to_rgb`` reads); compact
            defects' areas are read off its pixels. None: areas are stated as upper
            bounds (the region, blur included).
        scale_mm_per_px: millimetres per pixel of the original image; None: no mm.
        part_mask: H x W bool, the part's pixels (percentages are of the part);
            None: the whole image is the part.
        uncertain_below: class probability below which the type is hedged.
        language: a key of :data:`defectkit.core.caption.text.LANGUAGES`.

    Returns:
        ``(records, sentence)``: one record per region, or one ``localised=False``
        record for a defective verdict without a region; ``sentence`` joins the stated
        records' sentences, or says "No defect found" for a good verdict. Regions after
        the first whose peak is below ``FURTHER_MIN_RATIO`` x the image threshold are
        kept as records but not stated (``stated=False``, ``sentence=None``).
    """
    text = strings(language)
    if decision.verdict is None:  # type-only: which type, never whether it is defective
        p = decision.probabilities.get(decision.label, 0.0)
        return [], text["type_only"].format(label=decision.label, percent=round(100 * p))
    if decision.verdict == GOOD:
        return [], text["no_defect"].format(score=decision.score, threshold=decision.threshold)
    part_mask = _check_inputs(decision, scale_mm_per_px, part_mask)
    evidence = asdict(type_evidence(decision.label, decision.probabilities, uncertain_below))
    evidence |= {"note": None, "vocabulary": None}
    context = context or CaptionContext()
    similarity = None if raw is None else raw.prototype_similarity
    # No note when the class head found the region nearer the good shots: "like the
    # labelled example" would claim a likeness the result does not support.
    if (
        similarity is not None and context.shot_labels
        and decision.label != ANOMALY and not evidence["nearer_good"]
    ):  # fmt: skip
        evidence["note"] = nearest_note(
            np.asarray(similarity, dtype=np.float64).reshape(-1).tolist(),
            context.shot_labels, context.shot_notes, decision.label,
        )  # fmt: skip
    if raw is not None and raw.vocab_scores is not None and context.vocabulary:
        evidence["vocabulary"] = vocabulary_match(raw.vocab_scores, context.vocabulary)

    records = _region_records(decision, evidence, part_mask, scale_mm_per_px, _rgb(image, decision))
    if not records:  # a defective verdict without a region (global defect, tiny regions)
        ratio = decision.score / max(decision.threshold, 1e-12)  # a threshold of 0 is legal
        records = [
            DefectRecord(
                **evidence, classified=True, localised=False, stated=True,
                severity=severity_level(ratio), severity_ratio=round(ratio, 3),
            )  # fmt: skip
        ]
    for record in records:
        record.sentence = sentence_of(record, decision, text) if record.stated else None
    return records, " ".join(r.sentence for r in records if r.stated)


def _check_inputs(decision: Decision, scale_mm_per_px, part_mask) -> np.ndarray | None:
    if decision.label not in (*decision.classes, ANOMALY):
        raise ConfigError(
            f"result label {decision.label!r} is not among the classes {list(decision.classes)}"
        )
    if scale_mm_per_px is not None and not scale_mm_per_px > 0:
        raise ConfigError(
            f"the scale must be a positive number of mm per pixel, got {scale_mm_per_px}"
        )
    if part_mask is None:
        return None
    part_mask = np.asarray(part_mask, dtype=bool)
    if part_mask.shape != decision.mask.shape or not part_mask.any():
        raise ConfigError(
            f"the part mask must be a non-empty mask of the image's size {decision.mask.shape}, "
            f"got shape {part_mask.shape}"
        )
    return part_mask


def _rgb(image: np.ndarray | None, decision: Decision) -> np.ndarray | None:
    """The inspected image as H x W x 3 uint8 when given at the decision's size, else
    None: compact areas are then stated as upper bounds only."""
    if image is None or np.asarray(image).shape[:2] != decision.mask.shape:
        return None
    return to_rgb(image)


def _region_records(
    decision: Decision, evidence: dict[str, Any], part_mask, scale_mm_per_px, image
) -> list[DefectRecord]:
    """One record per region; class, note and vocabulary evidence go to the first only."""
    size = decision.mask.shape
    part_area = int(part_mask.sum()) if part_mask is not None else size[0] * size[1]
    records = []
    for rank, region in enumerate(decision.regions):
        primary = rank == 0
        ratio = (decision.score if primary else float(region.peak)) / max(
            decision.threshold, 1e-12
        )  # a threshold of 0 is legal
        geometry = region_geometry(
            region, part_mask=part_mask, part_area=part_area, image_size=size,
            scale_mm_per_px=scale_mm_per_px, image=image,
        )  # fmt: skip
        records.append(
            DefectRecord(
                **{**evidence, **({} if primary else {"note": None, "vocabulary": None})},
                classified=primary,
                localised=True,
                stated=primary or ratio >= FURTHER_MIN_RATIO,
                severity=severity_level(ratio),
                severity_ratio=round(ratio, 3),
                region=region,
                geometry=geometry,
            )
        )
    return records


# --------------------------------------------------------------------------- words
def _type_phrase(record: DefectRecord, text: Mapping[str, Any]) -> str:
    name = str(record.type).replace("_", " ")
    values = {"type": name, "Type": name[:1].upper() + name[1:]}
    if record.type == ANOMALY:
        key = "type_unclassified" if record.classified else "type_secondary_unclassified"
        return text[key].format(**values)
    if not record.classified:
        return text["type_secondary"].format(**values)
    if record.nearer_good:
        key = "type_near_good"
    else:
        key = "type_uncertain" if record.uncertain else "type_confident"
    return text[key].format(**values, confidence=100.0 * record.confidence)


def _size_phrase(record: DefectRecord, text: Mapping[str, Any]) -> str:
    g = record.geometry
    if not g.compact:
        if g.length_mm is not None:
            return text[f"length_{g.length_estimate}_mm"].format(length=g.length_low_mm)
        return text[f"length_{g.length_estimate}_px"].format(length=g.length_low_px)
    values: dict[str, Any] = {"percent": g.area_percent}
    if g.diameter_mm is not None:
        values |= {"diameter": g.diameter_mm, "low": g.diameter_low_mm, "high": g.diameter_mm}
        return text[f"area_{g.area_estimate}_mm"].format(**values)
    values |= {"area": g.area_high_px, "low": g.area_low_px, "high": g.area_high_px}
    return text[f"area_{g.area_estimate}_px"].format(**values)


def _vocab_phrase(record: DefectRecord, text: Mapping[str, Any]) -> str | None:
    vocab = record.vocabulary
    if vocab is None:
        return None
    terms = [t for t in (vocab.term, vocab.attribute) if t]
    if not terms:
        return None
    listed = text["vocabulary_separator"].join(
        text["vocabulary_term"].format(term=t) for t in terms
    )
    return text["vocabulary"].format(terms=listed)


def sentence_of(record: DefectRecord, decision: Decision, text: Mapping[str, Any]) -> str:
    """One sentence for one record, in the language of ``text``."""
    parts = [_type_phrase(record, text)]
    if record.localised:
        g = record.geometry
        parts.append(text["between_cells"].join(text["cells"][c] for c in g.position))
        parts.append(_size_phrase(record, text))
        orientation = text["orientation"].get(g.orientation or "", "")
        parts.append(text["shape"][g.shape].format(orientation=orientation))
    else:
        parts.append(
            text["not_localised"].format(score=decision.score, threshold=decision.threshold)
        )
    level = text["severity_levels"][record.severity]
    parts.append(text["severity"].format(level=level, ratio=record.severity_ratio))
    vocab = _vocab_phrase(record, text)
    if vocab:
        parts.append(vocab)
    sentence = text["separator"].join(parts)
    if record.note is not None:
        sentence += text["note_separator"] + text["note"].format(note=record.note.text)
    return sentence + text["end"]
