"""A shot's mask in the Label tab's brush: what the brush opens with, what Save stores.

No Gradio here, so it is tested directly. The brush is the review queue's
(:mod:`.mask_editor`, :mod:`.display`): the saved mask is tinted into the picture, the
engineer's strokes are added to it, and a tick box keeps or drops it whole. Nothing is
lost silently: a Save without strokes keeps the mask, and dropping it is said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from defectkit.apps.labelling.display import editor_value, editor_was_cleared, mask_with_strokes
from defectkit.apps.labelling.project import KEEP, Project
from defectkit.apps.labelling.records import ImageRecord
from defectkit.core.labels import GOOD


@dataclass(frozen=True)
class Saved:
    """What Save stored, and what the status line must say about the mask."""

    record: ImageRecord
    notes: tuple[str, ...]


def paint_start(project: Project, image_id: str) -> dict:
    """The brush's value for a shot: its display copy with its saved mask tinted in."""
    return editor_value(project.display_image(image_id), project.load_mask(image_id))


def save(
    project: Project, image_id: str, *, label: str | None, note: str, edited, keep: bool = True
) -> Saved:
    """Store a shot's label, note and mask: the saved mask (when ``keep``) plus the
    strokes left in the brush (``edited``, the editor's value; the eraser removes strokes).

    An emptied editor (its trash icon wipes the photograph) holds no readable strokes:
    the saved mask stays unless ``keep`` is off.
    """
    record = project.get(image_id)
    notes: list[str] = []
    mask: Any
    if editor_was_cleared(edited):
        mask = KEEP if keep else None
        notes.append(
            "the editor was emptied, so "
            + ("the mask was left as it was" if keep else "no strokes could be read")
            + " (click the image in the gallery to paint again)"
        )
    else:
        kept = project.load_mask(image_id) if keep else None
        mask = mask_with_strokes(edited, (record.height, record.width), kept)
    if record.mask and not keep:
        notes.append(
            "the saved mask is dropped (its tick box was cleared)"
            + ("; the new strokes are the mask" if mask is not None else "")
        )
    if mask is not None and mask is not KEEP and label in (None, GOOD):
        notes.append("the painted region is kept, but only defect shots use masks")
    record = project.annotate(image_id, label=label, note=note, mask=mask)
    return Saved(record, tuple(notes))
