"""Evaluation metrics: image AUROC, pixel AUROC, AUPRO, accuracy, balanced accuracy, macro-F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectkit.core.labels import GOOD


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], *, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, normalised to [0, 1].

    MVTec AD's definition (Bergmann et al. 2021): PRO is the mean, over ground-truth
    connected components, of the fraction of the component above the threshold; it is
    integrated against the false-positive rate on defect-free pixels. Computed in one
    sort: each defect pixel weighs 1 / (|component| * n_components), each normal pixel
    1 / n_normal, and cumulative sums over descending values give both curves.
    """
    from scipy import ndimage

    values, pro_w, fpr_w = [], [], []
    n_components = 0
    labelled = []
    for mask in masks:
        lab, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        labelled.append((lab, n))
        n_components += n
    n_normal = sum(int((~m.astype(bool)).sum()) for m in masks)
    if n_components == 0 or n_normal == 0:
        return float("nan")
    for (lab, n), amap in zip(labelled, maps, strict=True):
        sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
        flat = lab.ravel()
        w_pro = np.where(flat > 0, 1.0 / (sizes[flat] * n_components), 0.0)
        w_fpr = np.where(flat == 0, 1.0 / n_normal, 0.0)
        values.append(amap.ravel())
        pro_w.append(w_pro)
        fpr_w.append(w_fpr)
    v = np.concatenate(values)
    order = np.argsort(-v, kind="stable")
    v = v[order]
    pro = np.cumsum(np.concatenate(pro_w)[order])
    fpr = np.cumsum(np.concatenate(fpr_w)[order])
    # keep the last point of each run of equal values (a threshold takes all of them)
    last = np.r_[v[1:] != v[:-1], True]
    fpr, pro = np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]
    if fpr[-1] < fpr_limit:
        fpr, pro = np.r_[fpr, fpr_limit], np.r_[pro, pro[-1]]
    cut = np.searchsorted(fpr, fpr_limit, side="right")
    pro_at = np.interp(fpr_limit, fpr, pro)
    f = np.r_[fpr[:cut], fpr_limit]
    p = np.r_[pro[:cut], pro_at]
    return float(np.trapezoid(p, f) / fpr_limit)


def image_auroc(labels: Sequence[str], scores: Sequence[float]) -> float | None:
    """AUROC of the anomaly score for good vs any defect; None with one kind only."""
    from sklearn.metrics import roc_auc_score

    y = np.array([lab != GOOD for lab in labels])
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores)))


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float | None:
    """Pixel-level AUROC over all images; None without any defect pixel."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([m.ravel().astype(bool) for m in masks])
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.concatenate([a.ravel() for a in maps])))


def classification_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1 and confusion."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    classes = sorted(set(truth) | set(predicted), key=lambda c: (c != GOOD, c))
    p, r, f, s = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    binary_truth = [t != GOOD for t in truth]
    binary_pred = [q != GOOD for q in predicted]
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        "binary_accuracy": float(accuracy_score(binary_truth, binary_pred)),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion": {
            "labels": classes,
            "matrix": confusion_matrix(truth, predicted, labels=classes).tolist(),
        },
    }


def format_metrics(m: dict) -> str:
    """A short plain-text table of the headline metrics (``inspect eval`` and the demo)."""

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    lines = [f"{'images':<20}{m['n_images']}"]
    for key in ("image_auroc", "pixel_auroc", "aupro", "binary_accuracy", "accuracy", "balanced_accuracy", "macro_f1"):
        lines.append(f"{key:<20}{f(m.get(key))}")
    lines.append("per class (precision / recall / F1 / n):")
    for c, v in m["per_class"].items():
        lines.append(f"  {c:<18}{v['precision']:.3f} / {v['recall']:.3f} / {v['f1']:.3f} / {v['support']}")
    return "\n".join(lines)
