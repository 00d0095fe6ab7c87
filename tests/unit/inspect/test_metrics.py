"""Evaluation metrics: AUPRO, classification metrics, the text table."""

import numpy as np
import pytest

from defectkit.inspect import metrics


def test_aupro_perfect_and_inverted():
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    assert metrics.aupro([mask], [mask.astype(float)]) == pytest.approx(1.0)
    assert metrics.aupro([mask], [(~mask).astype(float)]) < 0.05


def test_classification_metrics():
    m = metrics.classification_metrics(["good", "a", "b", "b"], ["good", "a", "a", "b"])
    assert m["accuracy"] == 0.75 and m["binary_accuracy"] == 1.0
    assert m["per_class"]["b"]["recall"] == 0.5
    assert metrics.image_auroc(["good", "a"], [0.1, 0.9]) == 1.0
    assert metrics.image_auroc(["a", "a"], [0.1, 0.9]) is None


def test_format_metrics_lists_headline_numbers_and_classes():
    m = metrics.classification_metrics(["good", "a"], ["good", "a"])
    text = metrics.format_metrics({"n_images": 2, "image_auroc": 1.0, "pixel_auroc": None, **m})
    assert "image_auroc         1.0000" in text and "pixel_auroc         n/a" in text
    assert "  a                 1.000 / 1.000 / 1.000 / 1" in text
