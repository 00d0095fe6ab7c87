"""What the page shows, computed from a project without Gradio (so it is unit-testable).

Each function turns project state into plain values - gallery items, Markdown, table
rows, images - that :mod:`.ui` hands to components unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from defectkit.apps.labelling.histogram import render_histogram
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import SHOTS_WANTED
from defectkit.apps.labelling.review import Reviewed
from defectkit.core.decide import resize_map
from defectkit.core.labels import GOOD
from defectkit.core.overlay import overlay

UNLABELLED = "unlabelled"
FILTERS = ("all", "unlabelled", "labelled")
REVIEW_COLUMNS = ["image", "verdict", "class", "score", "caption"]


def label_choices(project: Project) -> list[str]:
    """Radio choices for an image's label: unlabelled, good, then the defect classes."""
    return [UNLABELLED, GOOD, *project.classes]


def gallery_items(project: Project, show: str = "all") -> tuple[list[tuple[str, str]], list[str]]:
    """(thumbnail path, caption) pairs and the image ids in the same order."""
    records = project.images
    if show == "unlabelled":
        records = [r for r in records if r.label is None]
    elif show == "labelled":
        records = [r for r in records if r.label is not None]
    items = []
    for r in records:
        mark = " ✎" if (r.mask and r.label not in (None, GOOD)) else ""
        # Label first: a narrow thumbnail truncates the caption's end.
        items.append((str(project.thumbnail(r.id)), f"{r.label or UNLABELLED}{mark} · {r.name}"))
    return items, [r.id for r in records]


def shots_markdown(project: Project) -> str:
    """Shots per class and what is missing, e.g. "scratch: 1 of 2 - label 1 more"."""
    counts = project.shot_counts()
    lines = ["**Shots per class**"]
    for label, count in counts.items():
        if count >= SHOTS_WANTED:
            lines.append(f"- {label}: {count} of {SHOTS_WANTED} ✓")
        else:
            lines.append(
                f"- {label}: {count} of {SHOTS_WANTED} - label {SHOTS_WANTED - count} more"
            )
    if not project.classes:
        lines.append("- no defect classes yet: add one below (e.g. scratch)")
    unlabelled = len(project.unlabelled())
    lines.append(
        f"\n{len(project.images)} images, {unlabelled} unlabelled (these are reviewed after Fit)"
    )
    return "\n".join(lines)


def fit_markdown(project: Project) -> str:
    record = project.fit_record
    if record is None:
        return "Not fitted yet. Label the shots, choose a backbone and click **Fit**."
    shots = ", ".join(f"{k} {v}" for k, v in record.shots.items())
    text = (
        f"Fitted {record.created} with **{record.backbone}** in {record.seconds:.1f} s "
        f"on {shots}. Calibrated threshold {record.fitted_thresholds['image']:.3f}."
    )
    if project.fit_is_stale:
        text += (
            "\n\n⚠ Labels, masks or notes changed since this fit: click **Fit** to include them."
        )
    return text


def histogram(project: Project, reviewed: list[Reviewed] = ()) -> np.ndarray | None:
    record = project.fit_record
    if record is None:
        return None
    defect = [s for scores in record.defect_scores.values() for s in scores]
    return render_histogram(
        record.good_scores, defect, record.image_threshold,
        unlabelled=[i.result.score for i in reviewed],
    )  # fmt: skip


def review_rows(items: list[Reviewed]) -> list[list]:
    return [
        [i.name, i.result.verdict, i.result.label, round(i.result.score, 4), i.result.caption or ""]
        for i in items
    ]


def review_thumbnail(project: Project, item: Reviewed) -> np.ndarray:
    """The heatmap overlay at thumbnail size (fast for a gallery of many large images)."""
    thumb = np.asarray(Image.open(project.thumbnail(item.id)).convert("RGB"))
    r = item.result
    h, w = r.anomaly_map.shape
    sy, sx = thumb.shape[0] / h, thumb.shape[1] / w
    boxes = [
        [
            int(x0 * sx),
            int(y0 * sy),
            max(int(x1 * sx), int(x0 * sx) + 1),
            max(int(y1 * sy), int(y0 * sy) + 1),
        ]
        for x0, y0, x1, y1 in r.boxes
    ]
    amap = resize_map(r.anomaly_map, thumb.shape[:2])
    return overlay(thumb, amap, threshold=r.threshold, boxes=boxes)


def review_caption(item: Reviewed) -> str:
    r = item.result
    return f"{item.name} · {r.verdict}{' · ' + r.label if r.is_defective else ''} · {r.score:.3f}"


def export_markdown(project: Project, archive: Path) -> str:
    """What the export wrote and what its self-check measured (from the bundle manifest)."""
    folder = archive.with_suffix("")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    check = manifest.get("selfcheck") or {}
    lines = [
        f"**Bundle** `{folder}` ({manifest.get('target', '?')}, {manifest.get('precision', '?')}); "
        f"zip `{archive}` ({archive.stat().st_size / 1e6:.1f} MB).",
        f"Classes: {', '.join(manifest.get('classes', []))}; image threshold "
        f"{manifest.get('thresholds', {}).get('image', float('nan')):.3f}.",
    ]
    if check:
        lines.append(
            f"Self-check {'passed' if check.get('passed') else 'FAILED'} on {check.get('images')} "
            f"images with {check.get('engine')} ({check.get('inference_precision')}): "
            f"score diff ≤ {check.get('score_max_abs', 0):.2g}, map diff ≤ "
            f"{check.get('map_max_abs', 0):.2g}, verdicts agree {check.get('verdicts_agree')}/"
            f"{check.get('images')}."
        )
    if project.fit_is_stale:
        lines.append(
            "⚠ Labels changed since the last fit: this bundle uses the previous labels. "
            "Fit again and re-export to include them."
        )
    return "\n\n".join(lines)


# --------------------------------------------------------------------------- mask editor
def mask_from_editor(value, shape: tuple[int, int]) -> np.ndarray | None:
    """The painted region of an ImageEditor value as H x W bool at the image's size.

    Paint lives in the layers (alpha > 0); when a browser sends no layers, the
    difference between composite and background is the paint.
    """
    if not isinstance(value, dict):
        return None
    painted = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        alpha = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.any(axis=-1)
        painted = alpha if painted is None else (painted | alpha)
    if (
        painted is None
        and value.get("composite") is not None
        and value.get("background") is not None
    ):
        composite, background = np.asarray(value["composite"]), np.asarray(value["background"])
        if composite.shape == background.shape:
            painted = np.any(composite[..., :3] != background[..., :3], axis=-1)
    if painted is None or not painted.any():
        return None
    if painted.shape != tuple(shape):
        resized = Image.fromarray(painted.astype(np.uint8) * 255).resize(
            (shape[1], shape[0]), Image.NEAREST
        )
        painted = np.asarray(resized) > 127
    return painted


def editor_value(image: np.ndarray, mask: np.ndarray | None) -> dict:
    """ImageEditor value: the image as background, an existing mask as a red layer."""
    layers = []
    if mask is not None:
        layer = np.zeros((*mask.shape, 4), np.uint8)
        layer[mask] = (255, 48, 48, 160)
        layers.append(layer)
    return {"background": image, "layers": layers, "composite": None}
