"""What the page shows, computed from a project without Gradio (so it is unit-testable).

Each function turns project state into plain values - gallery items, Markdown, table
rows, images - that :mod:`.ui` hands to components unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from defectkit.apps.labelling.display import overlay_image
from defectkit.apps.labelling.histogram import render_histogram
from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import SHOTS_WANTED, ImportReport
from defectkit.apps.labelling.review import Reviewed, teaching
from defectkit.apps.labelling.reviewer import ReviewProgress
from defectkit.apps.labelling.roi import roi_markdown
from defectkit.core.frame import LEFT_OUT
from defectkit.core.labels import ANOMALY, GOOD
from defectkit.core.results import InspectionResult

UNLABELLED = "unlabelled"
FILTERS = ("all", "unlabelled", "labelled")
REVIEW_COLUMNS = ["image", "verdict", "class", "score", "caption", "label next: why"]
#: What a type-only model says instead of good / defect, wherever a verdict would be.
NO_VERDICT = "defect sorting: no verdict"


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
    """The last fit: when, with what, how long the engineer waited, and which threshold
    is in use (the engineer's, kept across refits, or the calibrated one)."""
    record = project.fit_record
    if record is None:
        return "Not fitted yet. Label the shots, choose a backbone and click **Fit**."
    shots = ", ".join(f"{k} {v}" for k, v in record.shots.items()) or "no labelled shots"
    text = (
        f"Fitted {record.created} with **{record.backbone}** in {record.seconds:.1f} s "
        f"on {shots}{unlabelled_words(record)}. "
    )
    if record.has_verdict:
        text += threshold_words(record.threshold, record.fitted_thresholds["image"]) + "."
    else:
        text += f"**{NO_VERDICT.capitalize()}**: " + TYPE_ONLY_WHY
    text += roi_markdown(project)
    if project.fit_is_stale:
        text += (
            "\n\n⚠ Labels, masks or notes changed since this fit: click **Fit** to include them."
        )
    return text


TYPE_ONLY_WHY = (
    "the model names each image's type and never says good or defect (no good shots and "
    "no unlabelled images to learn good from), so there is no threshold. Label good "
    "images, or add unlabelled line images, and fit again for a verdict."
)


def unlabelled_words(record) -> str:
    """How the fit used the unlabelled images, e.g. " + 12 unlabelled images (2 judged
    defects and kept out)"; "" when it used none."""
    used = len(record.unlabelled_used)
    if not used:
        return ""
    kept_out = len(record.unlabelled_rejected)
    return (
        f" + {used} unlabelled image{'s' if used != 1 else ''} "
        f"({kept_out} judged defect{'s' if kept_out != 1 else ''} and kept out)"
    )


def fit_status(record) -> str:
    """What the status line adds after "Fitted in N s": the unlabelled images and the mode."""
    text = ""
    if record.unlabelled_used:
        used, out = len(record.unlabelled_used), len(record.unlabelled_rejected)
        text += (
            f"; learned from {used - out} of {used} unlabelled images, {out} judged "
            f"defect{'s' if out != 1 else ''} and kept out"
        )
        from defectkit.inspect.fit import judged_words, taught_words

        text += judged_words(record.unlabelled_judged_by) + taught_words(record.unlabelled_taught_classes)
    if record.frame:
        text += f"; {LEFT_OUT.format(record.frame)} (draw a region of interest to choose it yourself)"
    if not record.has_verdict:
        text += f"; {NO_VERDICT} (no good shots: the model only names types)"
    else:
        from defectkit.core.labels import GOOD
        from defectkit.inspect.fit import basis_words

        line_used = bool(record.unlabelled_used) and record.unlabelled_judged_by != "unused"
        more = "more good shots or unlabelled images ('Learn from unlabelled images') set it on more"
        words = basis_words(record.shots.get(GOOD, 0), line_used, more)
        text += f"; the threshold {words}" if words else ""
    return text


def threshold_words(yours: float | None, calibrated: float) -> str:
    if yours is None:
        return f"Threshold in use: the calibrated {calibrated:.3f}"
    return (
        f"Threshold in use: **yours, {yours:.3f}** (kept across refits; the calibrated one "
        f"is {calibrated:.3f})"
    )


def refit_words(previous, record) -> str:
    """What a fit did to the threshold, for the status line ("" when nothing to say).

    An engineer's threshold survives a refit with the same backbone; the line says so
    and gives the new calibrated value, so neither change goes unnoticed.
    """
    if not record.has_verdict:
        return ""
    calibrated = record.fitted_thresholds["image"]
    if record.threshold is not None:
        return (
            f"; your threshold {record.threshold:.3f} is kept (the calibrated one is now "
            f"{calibrated:.3f}: 'Use the calibrated threshold' switches to it)"
        )
    if previous is not None and previous.threshold is not None:
        return (
            f"; threshold: the calibrated {calibrated:.3f} (yours, {previous.threshold:.3f}, was "
            f"for {previous.backbone}, whose scores are not comparable)"
        )
    return ""


def histogram(project: Project, reviewed: list[Reviewed] = ()) -> np.ndarray | None:
    record = project.fit_record
    if record is None or not record.has_verdict:
        return None  # a type-only model has no scores to draw
    defect = [s for scores in record.defect_scores.values() for s in scores]
    return render_histogram(
        record.good_scores, defect, record.image_threshold,
        unlabelled=[i.result.score for i in reviewed],
    )  # fmt: skip


def verdict_word(result: InspectionResult) -> str:
    """ "good", "defect", or :data:`NO_VERDICT` for a type-only model."""
    return result.verdict if result.verdict is not None else NO_VERDICT


def review_rows(items: list[Reviewed], learned=()) -> list[list]:
    """Table rows; the last column says why each image is where "label next" puts it
    (``learned``: ids of the images the fit took in as good)."""
    return [
        [
            i.name, verdict_word(i.result), i.result.label,
            round(i.result.score, 4) if i.result.verdict is not None else "-",
            i.result.caption or "", teaching(i, learned).reason,
        ]
        for i in items
    ]  # fmt: skip


def review_thumbnail(project: Project, item: Reviewed) -> np.ndarray:
    """The heatmap overlay at thumbnail size (fast for a gallery of many large images)."""
    thumb = np.asarray(Image.open(project.thumbnail(item.id)).convert("RGB"))
    return overlay_image(thumb, item.maps, item.result.threshold, item.result.boxes)


def review_caption(item: Reviewed) -> str:
    r = item.result
    if r.verdict is None:
        return f"{item.name} · type {r.label} · no verdict"
    return f"{item.name} · {r.verdict}{' · ' + r.label if r.is_defective else ''} · {r.score:.3f}"


def progress_markdown(progress: ReviewProgress) -> str:
    """One line on the background review: how far, how long, or why it stopped."""
    if progress.error:
        return f"**Review stopped:** {progress.error}"
    if progress.total == 0:
        return "No unlabelled images to review: add some on the Label tab."
    if progress.running:
        return (
            f"Inspecting the unlabelled images in the background: {progress.done} of "
            f"{progress.total} ({progress.seconds:.0f} s so far); labelling goes on meanwhile."
        )
    if progress.done < progress.total:
        return (
            f"Reviewed {progress.done} of {progress.total} unlabelled images; the rest are queued."
        )
    return f"Reviewed {progress.total} unlabelled images ({progress.seconds:.1f} s)."


def class_line(result: InspectionResult) -> str:
    """The class and the class head's probabilities: the score decides the verdict, the
    class head names a defect's type (the nearest labelled one), and the line says when
    the head does not back it (:func:`defectkit.core.decide.names_type`)."""
    shares = ", ".join(
        f"{c} {p:.0%}" for c, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1])
    )
    if result.verdict is None:
        return f"Type: **{result.label}**. Class head: {shares}"
    if not result.is_defective:
        return (
            f"Class: **good** (the score is below the threshold). Class head, which only "
            f"names a defect's type: {shares}"
        )
    if result.label == ANOMALY:
        return "Class: **anomaly** (no defect class is labelled)"
    if result.defects and result.defects[0].nearer_good:
        return (
            f"Class: **{result.label}**, the nearest labelled type; the class head finds it "
            f"nearer the good shots ({shares})"
        )
    return f"Class: **{result.label}**. Class head: {shares}"


def describe(item: Reviewed, learned=()) -> str:
    """Markdown for the selected image: verdict, class, score, probabilities, caption,
    and why "label next" puts it where it is."""
    r = item.result
    if r.verdict is None:
        verdict = f"Verdict: **{NO_VERDICT}** (the model only names types)"
    else:
        verdict = "**DEFECT**" if r.is_defective else "**good**"
        verdict = (
            f"Verdict: {verdict} &nbsp; Score: **{r.score:.3f}** (threshold {r.threshold:.3f})"
        )
    lines = [f"### {item.name}", verdict, class_line(r)]
    regions = [d.region for d in r.defects if d.region is not None]
    if regions:
        d = regions[0]
        lines.append(
            f"Largest-peak region: box {tuple(d.box)}, {d.area_px} px "
            f"({len(regions)} region{'s' if len(regions) > 1 else ''})"
        )
    if r.caption:
        lines.append(f"Caption: _{r.caption}_")
    lines.append(f"Label next: {teaching(item, learned).reason}")
    return "\n\n".join(lines)


def import_status(report: ImportReport) -> tuple[str, str]:
    """(outcome, message) of an import: ``"ok"``, ``"partial"`` (some added, some not)
    or ``"failed"`` (nothing added); the page heads the line accordingly."""
    if not report.errors:
        return "ok", report.message()
    return ("partial" if report.added or report.duplicates else "failed"), report.message()


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
        f"Classes: {', '.join(manifest.get('classes', []))}; "
        + (
            f"{NO_VERDICT} (the bundle names types only)."
            if manifest.get("mode") == "type_only"
            else f"image threshold {manifest.get('thresholds', {}).get('image', float('nan')):.3f}."
        ),
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
