"""The review queue's logic: a line's escalated parts, the model's proposal, confirm.

What the Review tab (:mod:`.tabs.review`) calls; no Gradio here, so it is tested
directly. A confirmed part joins the project like an uploaded image, with the label
the engineer chose (pre-filled from the model's), the mask the engineer left in the
queue's brush (the model's region, kept or not, and the strokes painted over the part),
and the model's caption as its note; the Fit tab's normal refit then learns
from it. Parts already in the project (same bytes) count as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from defectkit.apps.labelling.display import (
    editor_value,
    editor_was_cleared,
    mask_with_strokes,
    shrink,
)
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import ImageRecord, ProjectError
from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.opinion_report import picture as opinion_picture
from defectkit.apps.reviewqueue.sources import ReviewSource
from defectkit.core.images import read_image
from defectkit.core.labels import ANOMALY, GOOD
from defectkit.errors import ImageError

#: Most parts one queue shows (the daemon's store keeps --review-keep, 1000 by default).
QUEUE_LIMIT = 200
#: ``confirm``'s default mask: the model's region as the line proposed it.
PROPOSED: Final = "proposed"


@dataclass(frozen=True)
class Proposal:
    """What the model proposed for one part, as the review form pre-fills it."""

    label: str  # a project class or good; "" when the model's class is not in the project
    model_label: str
    caption: str
    reason: str


def queue(source: ReviewSource, project: Project) -> list[ReviewItem]:
    """The parts still to review, least certain first (score nearest the threshold).

    Parts whose image is already in the project were reviewed before: left out.
    """
    done = {record.sha256 for record in project.images}
    items = [item for item in source.list(limit=QUEUE_LIMIT) if item.sha256 not in done]
    return sorted(items, key=lambda item: (item.margin, -item.created_at))


def proposal(item: ReviewItem, project: Project) -> Proposal:
    """The model's answer mapped onto the project's classes.

    An unnamed anomaly, or a class this project does not have, pre-fills nothing but
    the caption: the engineer picks the class (one click), never a wrong default.
    """
    choices = {GOOD, *project.classes}
    model = item.model_verdict and item.label
    label = model if model in choices and model != ANOMALY else ""
    if item.model_verdict == GOOD:
        label = GOOD
    return Proposal(label, item.label, item.caption() or "", item.reason)


def part_image(item: ReviewItem) -> np.ndarray:
    """The part's pixels (H x W x 3 uint8), or a :class:`ProjectError` saying why not."""
    if item.image is None:
        raise ProjectError("the part's image was not fetched; select it again")
    try:
        return read_image(item.image)
    except ImageError as exc:
        raise ProjectError(
            f"the image of {item.name or item.sha256[:12]} from {item.station} cannot be read "
            f"({exc}); it can be neither painted nor added - check the line's camera or store"
        ) from None


def picture(item: ReviewItem) -> np.ndarray:
    """The part with the model's mask outlined in colour (what the reviewer judges)."""
    return opinion_picture(part_image(item), item.mask_png)


def proposed_mask(item: ReviewItem, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """The model's defect region at the part's pixels (``shape``: the part's H, W when the
    caller has decoded it already); None where it called the part good, proposed no
    region, or sent a mask of another size (no proposal for this image)."""
    mask = item.mask() if item.model_verdict != GOOD else None
    if mask is None or mask.shape != (shape or part_image(item).shape[:2]):
        return None
    return mask


def paint_start(item: ReviewItem, image: np.ndarray | None = None) -> dict:
    """What the queue's brush opens with: the part (display copy; ``image``: its pixels
    when the caller has decoded them already) with the model's region tinted in (why
    tinted: :func:`.display.editor_value`) and no paint yet. The engineer keeps or drops
    the region with a tick box and paints what it missed.
    """
    image = part_image(item) if image is None else image
    return editor_value(shrink(image), proposed_mask(item, image.shape[:2]))


def corrected_mask(item: ReviewItem, edited, *, keep_proposal: bool = True) -> np.ndarray | None:
    """The engineer's mask at the part's own pixels: the model's region (when kept) plus
    the strokes left in the queue's brush (the eraser removes strokes); None: nothing.

    Refuses an emptied editor (its trash icon wipes the photograph too): what was
    painted there cannot be read, and a guess would store a mask nobody drew.
    """
    shape = part_image(item).shape[:2]  # an unreadable part: say that, not "emptied"
    if editor_was_cleared(edited):
        raise ProjectError(
            "the brush's picture was emptied (trash icon); click the part in the queue again "
            "to paint on it"
        )
    return mask_with_strokes(edited, shape, proposed_mask(item, shape) if keep_proposal else None)


def confirm(
    project: Project,
    item: ReviewItem,
    *,
    label: str,
    mask: np.ndarray | None | str = PROPOSED,
    note: str = "",
) -> ImageRecord:
    """Add a reviewed part to the project with the engineer's label and mask.

    Args:
        item: the part with its image (``source.get(id)``).
        label: ``good`` or one of the project's classes (the model's proposal or a
            correction).
        mask: the defect region at the part's pixels (H x W bool, e.g.
            :func:`corrected_mask` of the queue's brush), None for none, or
            :data:`PROPOSED` for the model's region as it is. Good parts get no mask.
        note: the engineer's note; the model's caption when empty.
    """
    if not label:
        raise ProjectError("choose the part's class (good or a defect class) before confirming")
    if label != GOOD and label not in project.classes:
        raise ProjectError(f"no class {label!r} in this project; add it in the Label tab first")
    height, width = part_image(item).shape[:2]  # an unreadable part stops here, saying why
    if isinstance(mask, str):
        mask = item.mask()
        if mask is not None and mask.shape != (height, width):
            mask = None  # a mask from another resolution is no proposal for this image
    elif mask is not None and mask.shape != (height, width):
        raise ProjectError(
            f"the painted mask is {mask.shape[1]}x{mask.shape[0]} px, the part {width}x{height}; "
            "select the part again and repaint"
        )
    name = item.name or f"review-{item.sha256[:12]}.png"
    record, _ = project.add_image(item.image, f"{item.station}-{name}")
    return project.annotate(
        record.id,
        label=label,
        mask=None if label == GOOD else mask,
        note=note.strip() or (item.caption() or ""),
    )
