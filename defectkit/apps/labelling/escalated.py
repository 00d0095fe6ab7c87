"""The review queue's logic: a line's escalated parts, the model's proposal, confirm.

What the Review tab (:mod:`.tabs.review`) calls; no Gradio here, so it is tested
directly. A confirmed part joins the project like an uploaded image, with the label
the engineer chose (pre-filled from the model's), the model's mask when the engineer
kept it, and the model's caption as its note; the Fit tab's normal refit then learns
from it. Parts already in the project (same bytes) count as done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import ImageRecord, ProjectError
from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.opinion_report import picture as opinion_picture
from defectkit.apps.reviewqueue.sources import ReviewSource
from defectkit.core.images import read_image
from defectkit.core.labels import ANOMALY, GOOD

#: Most parts one queue shows (the daemon's store keeps --review-keep, 1000 by default).
QUEUE_LIMIT = 200


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


def picture(item: ReviewItem) -> np.ndarray:
    """The part with the model's mask outlined in colour (what the reviewer judges)."""
    return opinion_picture(read_image(item.image), item.mask_png)


def confirm(
    project: Project, item: ReviewItem, *, label: str, keep_mask: bool = True, note: str = ""
) -> ImageRecord:
    """Add a reviewed part to the project with the engineer's label.

    Args:
        item: the part with its image (``source.get(id)``).
        label: ``good`` or one of the project's classes (the model's proposal or a
            correction).
        keep_mask: paint the model's mask on a defect (repaint it in the Label tab to
            correct it); ignored for good parts.
        note: the engineer's note; the model's caption when empty.
    """
    if not label:
        raise ProjectError("choose the part's class (good or a defect class) before confirming")
    if label != GOOD and label not in project.classes:
        raise ProjectError(f"no class {label!r} in this project; add it in the Label tab first")
    if item.image is None:
        raise ProjectError("the part's image was not fetched; select it again")
    name = item.name or f"review-{item.sha256[:12]}.png"
    record, _ = project.add_image(item.image, f"{item.station}-{name}")
    mask = item.mask() if keep_mask and label != GOOD else None
    if mask is not None and mask.shape != (record.height, record.width):
        mask = None  # a mask from another resolution is no proposal for this image
    return project.annotate(
        record.id, label=label, mask=mask, note=note.strip() or (item.caption() or "")
    )
