"""Review results: one unlabelled image and what the inspector says about it.

Why :func:`rethreshold`: the slider must move verdicts *live*. Running the model again
for every slider position would cost a forward pass per image per move; the verdict,
class, mask, boxes and caption are a cheap numpy function of the raw outputs every
result keeps (:func:`defectkit.core.decide.decide`, then
:func:`defectkit.core.caption.describe`), so the model runs once per image and fit
(:mod:`.reviewer`) and a moved threshold only decides the kept raw outputs again.

Why :func:`slim`: a 6000 x 4000 result carries a 96 MB anomaly map and a 24 MB mask at
the image's size. The review keeps the verdict, class, regions and caption (all in the
image's pixels) and the maps at display size (:class:`~.display.DisplayMaps`), which is
all the page draws.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from defectkit.apps.labelling.display import DisplayMaps
from defectkit.apps.labelling.next_label import Lesson, label_next, lesson
from defectkit.apps.labelling.records import TYPE_ONLY
from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult, Thresholds

#: The review's orders; the first is the default. "label next" is
#: :func:`~.next_label.label_next`: the image whose label would teach most first.
LABEL_NEXT = "label next: most to learn first"
SORTS = {
    LABEL_NEXT: ("teach", False),
    "score, highest first": ("score", True),
    "score, lowest first": ("score", False),
    "name": ("name", False),
}
_EMPTY = np.zeros((0, 0), np.float32)


@dataclass(frozen=True)
class Reviewed:
    """One unlabelled image and what the inspector says about it.

    ``result`` is decided at the image's own size (boxes and captions in its pixels)
    but carries no full-size maps (see :func:`slim`); ``maps`` are those maps at
    display size.
    """

    id: str
    name: str
    result: InspectionResult
    maps: DisplayMaps


def slim(image_id: str, name: str, result: InspectionResult) -> Reviewed:
    """Keep what the review shows: the result without its full-size maps and image."""
    maps = DisplayMaps.of(result.anomaly_map, result.mask)
    light = replace(result, anomaly_map=_EMPTY, mask=_EMPTY.astype(bool), image=None)
    return Reviewed(image_id, name, light, maps)


def rethreshold(
    result: InspectionResult,
    classes,
    thresholds: Thresholds,
    context: CaptionContext | None = None,
    *,
    image: np.ndarray | None = None,
) -> InspectionResult:
    """The same image decided at other thresholds, without running the model.

    Decides the raw outputs the result kept (``result.raw``) again and describes them
    with the same caption evidence (nearest shots, vocabulary in ``context``) - exactly
    what the inspector and the exported runtime do for a new image. ``image`` (default:
    the one the result kept) is read for compact defects' areas; a slimmed result
    kept none, so pass the image, or its captions state upper bounds only.
    """
    return inspection_result(
        result.raw, classes=classes, thresholds=thresholds, context=context,
        image=result.image if image is None else image, image_size=result.image_size,
        path=result.path, timings=result.timings, has_verdict=result.mode != TYPE_ONLY,
    )  # fmt: skip


def teaching(item: Reviewed, learned: Collection[str] = ()) -> Lesson:
    """What labelling ``item`` would teach (:func:`~.next_label.lesson`); ``learned``:
    ids of the images the fit took in as good."""
    r = item.result
    return lesson(
        r.score, r.threshold, r.probabilities,
        has_verdict=r.mode != TYPE_ONLY, learned=item.id in learned,
    )  # fmt: skip


def sort_reviewed(
    items: list[Reviewed], order: str, learned: Collection[str] = ()
) -> list[Reviewed]:
    """Sort by one of :data:`SORTS` (unknown orders sort by the first, "label next")."""
    key, reverse = SORTS.get(order, next(iter(SORTS.values())))
    if key == "name":
        return sorted(items, key=lambda i: i.name.lower(), reverse=reverse)
    if key == "teach":
        return [items[i] for i in label_next([teaching(i, learned) for i in items])]
    # NaN scores (a type-only model) sort last either way, by name.
    scored = [i for i in items if math.isfinite(i.result.score)]
    rest = sorted((i for i in items if not math.isfinite(i.result.score)), key=lambda i: i.name)
    return sorted(scored, key=lambda i: i.result.score, reverse=reverse) + rest
