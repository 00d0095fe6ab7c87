"""HTML evaluation report: metrics table, ROC curve, confusion matrix, worst examples.

Self-contained: one ``index.html`` plus PNG overlays beside it, no JavaScript, no
plotting library (the ROC curve is inline SVG), so it opens on an offline PC.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from PIL import Image

from defectkit.core.files import atomic_directory
from defectkit.core.labels import GOOD
from defectkit.core.overlay import overlay
from defectkit.inspect.evaluate import Evaluation

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}.ex{display:inline-block;width:250px;margin:6px;vertical-align:top;font-size:13px}
.ex img{width:250px}.bad{color:#b00020;font-weight:600}h2{margin-top:1.6em}"""


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def roc_svg(labels: list[str], scores: list[float], size: int = 320) -> str:
    """Inline SVG of the ROC curve (good vs defect); empty string with one class only."""
    from sklearn.metrics import roc_curve

    y = np.array([lab != GOOD for lab in labels])
    if y.all() or not y.any():
        return ""
    fpr, tpr, _ = roc_curve(y, np.asarray(scores))
    pad = 36
    inner = size - 2 * pad
    pts = " ".join(f"{pad + x * inner:.1f},{pad + (1 - t) * inner:.1f}" for x, t in zip(fpr, tpr, strict=True))
    return (
        f'<svg width="{size}" height="{size}" xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad + inner}" x2="{pad + inner}" y2="{pad}" stroke="#ccc" stroke-dasharray="4"/>'
        f'<polyline points="{pts}" fill="none" stroke="#c2185b" stroke-width="2"/>'
        f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle" font-size="12">false-positive rate</text>'
        f'<text x="12" y="{size / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 12 {size / 2})">'
        "true-positive rate</text></svg>"
    )


def _confusion_html(conf: dict) -> str:
    labels = conf["labels"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in labels)
    rows = "".join(
        f"<tr><th>{html.escape(t)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for t, row in zip(labels, conf["matrix"], strict=True)
    )
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{rows}</table>"


def worst_examples(evaluation: Evaluation, count: int = 12) -> list[int]:
    """Indices of the most instructive images: mistakes first, then the closest calls."""
    items = []
    for i, (s, r) in enumerate(zip(evaluation.samples, evaluation.results, strict=True)):
        wrong = r.label != s.label
        # margin from the threshold, signed so that a smaller value is a worse call
        margin = (r.score - r.threshold) if s.label != GOOD else (r.threshold - r.score)
        items.append((not wrong, margin, i))
    items.sort()
    return [i for _, _, i in items[:count]]


def write_report(evaluation: Evaluation, directory: str | Path, *, title: str = "defectkit evaluation") -> Path:
    """Write ``index.html``, ``metrics.json`` and overlay PNGs into ``directory``."""
    m = evaluation.metrics
    with atomic_directory(directory, marker="metrics.json") as tmp:
        (tmp / "metrics.json").write_text(json.dumps(m, indent=2))
        (tmp / "images").mkdir()
        rows = "".join(
            f"<tr><th>{k}</th><td>{_fmt(m.get(k))}</td></tr>"
            for k in ("n_images", "image_auroc", "pixel_auroc", "aupro", "binary_accuracy",
                      "accuracy", "balanced_accuracy", "macro_f1")
        )
        per_class = "".join(
            f"<tr><th>{html.escape(c)}</th><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
            f"<td>{v['f1']:.3f}</td><td>{v['support']}</td></tr>"
            for c, v in m["per_class"].items()
        )
        examples = []
        for rank, i in enumerate(worst_examples(evaluation)):
            s, r = evaluation.samples[i], evaluation.results[i]
            image = s.load_image()
            amap = r.anomaly_map if r.anomaly_map.shape == image.shape[:2] else np.zeros(image.shape[:2])
            pic = overlay(image, amap, threshold=r.threshold, boxes=r.boxes)
            name = f"images/{rank:02d}.png"
            Image.fromarray(pic).save(tmp / name)
            cls = ' class="bad"' if r.label != s.label else ""
            examples.append(
                f'<div class="ex"><img src="{name}" alt="overlay"><br>{html.escape(s.name)}<br>'
                f"true <b>{html.escape(s.label)}</b>, predicted <span{cls}>{html.escape(r.label)}</span>"
                f"<br>score {r.score:.4f} (threshold {r.threshold:.4f})"
                + (f"<br><i>{html.escape(r.caption)}</i>" if r.caption else "")
                + "</div>"
            )
        body = (
            f"<h1>{html.escape(title)}</h1><h2>Metrics</h2><table>{rows}</table>"
            "<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th>"
            f"<th>F1</th><th>support</th></tr>{per_class}</table>"
            f"<h2>ROC curve (good vs defect)</h2>{roc_svg([s.label for s in evaluation.samples], [r.score for r in evaluation.results])}"
            f"<h2>Confusion matrix</h2>{_confusion_html(m['confusion'])}"
            f"<h2>Worst-scored examples</h2>{''.join(examples)}"
        )
        (tmp / "index.html").write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>"
        )
    return Path(directory)
