import json

import numpy as np
import pytest

from defectkit.inspect import metrics
from defectkit.inspect.results import Thresholds, postprocess


def test_postprocess_good_and_defect():
    thr = Thresholds(image=1.5, pixel=1.0)
    amap = np.zeros((8, 8), np.float32)
    good = postprocess(0.7, amap, np.array([2.0, 0.0]), classes=("good", "dent"), thresholds=thr, image_size=(16, 16))
    assert good.verdict == "good" and good.label == "good" and good.defects == [] and not good.mask.any()
    amap[2:4, 2:4] = 3.0
    bad = postprocess(3.0, amap, np.array([2.0, 0.0]), classes=("good", "dent"), thresholds=thr, image_size=(16, 16))
    # the verdict follows the calibrated score; the type is the best *defect* class
    assert bad.verdict == "defect" and bad.label == "dent"
    assert bad.anomaly_map.shape == (16, 16) and len(bad.defects) == 1
    x0, y0, x1, y1 = bad.defects[0]["box"]
    assert x0 <= 5 <= x1 and y0 <= 5 <= y1
    json.dumps(bad.to_dict())  # JSON-serialisable


def test_anomaly_label_without_defect_classes():
    r = postprocess(5.0, np.ones((4, 4)), np.array([0.0]), classes=("good",),
                    thresholds=Thresholds(1.0, 1.0, min_defect_area=1), image_size=(4, 4))
    assert r.label == "anomaly"


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


def test_boxes_skip_defect_records_without_a_region():
    import dataclasses

    from defectkit.inspect.results import InspectionResult

    missing = dataclasses.MISSING
    required = {
        f.name: None for f in dataclasses.fields(InspectionResult)
        if f.default is missing and f.default_factory is missing
    }
    result = InspectionResult(**required)
    result.defects = [{"box": [1, 2, 5, 6], "area_px": 9}, {"caption": "not localised"}]
    assert result.boxes == [[1, 2, 5, 6]]
