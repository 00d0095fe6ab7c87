"""Evaluate an inspector (PyTorch or exported bundle) on labelled samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from defectkit.core.labels import GOOD
from defectkit.core.results import InspectionResult
from defectkit.datasets.base import Sample
from defectkit.inspect import metrics


@dataclass
class Evaluation:
    """Metrics plus the per-image results they came from (for reports)."""

    metrics: dict
    samples: list[Sample]
    results: list[InspectionResult]


def evaluate(model, samples: Sequence[Sample], *, progress: bool = False, keep_maps: bool = True) -> Evaluation:
    """Run ``model.inspect`` on every sample and compute the metrics.

    ``model`` is anything with ``inspect(images, paths) -> list[InspectionResult]`` and
    ``classes``: an :class:`~defectkit.inspect.inspector.Inspector` or a runtime bundle.
    Images go one at a time (``inspect([image])``), as a line sends them.
    Pixel metrics are computed only when every defective sample has a mask.
    """
    samples = list(samples)
    iterator = samples
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(samples, desc="eval", unit="img", leave=False)
    results: list[InspectionResult] = []
    masks, maps = [], []
    with_masks = all(s.label == GOOD or s.mask_path is not None or s.mask_array is not None for s in samples)
    for sample in iterator:
        image = sample.load_image()
        result = model.inspect([image], [str(sample.path) if sample.path else sample.name])[0]
        if with_masks:
            mask = sample.load_mask() if sample.label != GOOD else None
            masks.append(mask if mask is not None else np.zeros(image.shape[:2], dtype=bool))
            maps.append(result.anomaly_map)
        if not keep_maps:
            result.anomaly_map = result.anomaly_map[:0]
            result.mask = result.mask[:0]
            result.raw = None  # its map too: 200 maps of 250 x 250 are 50 MB
        result.image = None  # the caption is written; keeping every image costs memory
        results.append(result)

    truth = [s.label for s in samples]
    known = set(model.classes)
    # Ground-truth classes the model was not fitted on count as "defect of some kind":
    # the type cannot be right, but the verdict can.
    predicted = [r.label for r in results]
    out = {
        "n_images": len(samples),
        "image_auroc": metrics.image_auroc(truth, [r.score for r in results]),
        "pixel_auroc": metrics.pixel_auroc(masks, maps) if with_masks else None,
        "aupro": None,
        **metrics.classification_metrics(truth, predicted),
        "unknown_classes": sorted(set(truth) - known),
    }
    if with_masks and out["pixel_auroc"] is not None:
        out["aupro"] = metrics.aupro(masks, maps)
    if results and all(r.verdict is None for r in results):
        # A type-only model (defect sorting): no score, map or verdict to measure.
        out |= {"mode": "type_only", "image_auroc": None, "pixel_auroc": None, "aupro": None, "binary_accuracy": None}
    return Evaluation(metrics=out, samples=samples, results=results)
