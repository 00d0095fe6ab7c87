"""Review: inspect the unlabelled images once per fit, re-decide them at any threshold.

Why a cache and :func:`rethreshold`: the slider must move verdicts *live*. Running the
model again for every slider position would cost a forward pass per image per move;
the verdict, class, mask, boxes and caption are a cheap numpy function of the raw
outputs every result keeps (:func:`defectkit.core.decide.decide`, then
:func:`defectkit.core.caption.describe`), so we keep the first result of each image and
only decide it again when the threshold moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from defectkit.core.caption import CaptionContext
from defectkit.core.overlay import overlay
from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult, Thresholds

SORTS = {
    "score, highest first": ("score", True),
    "score, lowest first": ("score", False),
    "name": ("name", False),
}


@dataclass(frozen=True)
class Reviewed:
    """One unlabelled image and what the inspector says about it."""

    id: str
    name: str
    result: InspectionResult


def rethreshold(
    result: InspectionResult, classes, thresholds: Thresholds, context: CaptionContext | None = None
) -> InspectionResult:
    """The same image decided at other thresholds, without running the model.

    Decides the raw outputs the result kept (``result.raw``) again and describes them
    with the same caption evidence (nearest shots, vocabulary in ``context``) - exactly
    what the inspector and the exported runtime do for a new image.
    """
    return inspection_result(
        result.raw, classes=classes, thresholds=thresholds, context=context,
        image=result.image, image_size=result.image_size, path=result.path,
        timings=result.timings,
    )  # fmt: skip


class ReviewCache:
    """Results of the current fit, per image id; cleared when the fit changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fit_id: str | None = None
        self._results: dict[str, InspectionResult] = {}

    def review(self, project, *, progress=None) -> list[Reviewed]:
        """Every unlabelled image of ``project``, decided at the project's thresholds.

        Only images not seen under this fit go through the model (batched).
        """
        inspector = project.load_inspector()
        fit_id = project.fit_record.id
        context = inspector.caption_context
        records = project.unlabelled()
        with self._lock:
            if fit_id != self._fit_id:
                self._fit_id, self._results = fit_id, {}
            todo = [r for r in records if r.id not in self._results]
        for start in range(0, len(todo), 8):
            batch = todo[start : start + 8]
            if progress is not None:
                progress(start / max(len(todo), 1), desc=f"Inspecting {len(todo)} images")
            images = [project.load_image(r.id) for r in batch]
            results = inspector.inspect(images, [r.name for r in batch])
            with self._lock:
                if self._fit_id == fit_id:
                    self._results.update({r.id: res for r, res in zip(batch, results, strict=True)})
        thresholds, classes = project.thresholds(), tuple(project.fit_record.classes)
        with self._lock:
            cached = {r.id: self._results.get(r.id) for r in records}
        return [
            Reviewed(r.id, r.name, rethreshold(cached[r.id], classes, thresholds, context))
            for r in records
            if cached[r.id] is not None
        ]

    def forget(self, image_id: str) -> None:
        with self._lock:
            self._results.pop(image_id, None)


def sort_reviewed(items: list[Reviewed], order: str) -> list[Reviewed]:
    """Sort by one of :data:`SORTS` (unknown orders sort by score, highest first)."""
    key, reverse = SORTS.get(order, ("score", True))
    if key == "name":
        return sorted(items, key=lambda i: i.name.lower(), reverse=reverse)
    return sorted(items, key=lambda i: i.result.score, reverse=reverse)


def overlay_image(image: np.ndarray, result: InspectionResult) -> np.ndarray:
    """Heatmap blended on the image, defect boxes outlined."""
    boxes = result.boxes
    return overlay(image, result.anomaly_map, threshold=result.threshold, boxes=boxes)


def mask_image(image: np.ndarray, mask: np.ndarray | None, colour=(230, 40, 40)) -> np.ndarray:
    """The image dimmed, with ``mask`` painted in ``colour`` (predicted or labelled)."""
    out = (image.astype(np.float32) * 0.6).astype(np.uint8)
    if mask is not None and mask.any():
        out[mask] = (0.35 * image[mask] + 0.65 * np.array(colour)).astype(np.uint8)
    return out


def describe(item: Reviewed) -> str:
    """Markdown for the selected image: verdict, class, score, probabilities, caption."""
    r = item.result
    verdict = "**DEFECT**" if r.is_defective else "**good**"
    lines = [
        f"### {item.name}",
        f"Verdict: {verdict} &nbsp; Class: **{r.label}** &nbsp; "
        f"Score: **{r.score:.3f}** (threshold {r.threshold:.3f})",
        "Class probabilities: "
        + ", ".join(
            f"{c} {p:.0%}" for c, p in sorted(r.probabilities.items(), key=lambda kv: -kv[1])
        ),
    ]
    regions = [d.region for d in r.defects if d.region is not None]
    if regions:
        d = regions[0]
        lines.append(
            f"Largest-peak region: box {tuple(d.box)}, {d.area_px} px "
            f"({len(regions)} region{'s' if len(regions) > 1 else ''})"
        )
    if r.caption:
        lines.append(f"Caption: _{r.caption}_")
    return "\n\n".join(lines)
