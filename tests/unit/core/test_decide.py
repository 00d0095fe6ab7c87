"""decide(): raw outputs -> verdict, label, mask and regions; the one threshold rule."""

import json

import numpy as np
import pytest

from defectkit.core.decide import decide
from defectkit.core.predictor import inspection_result
from defectkit.core.results import DefectRecord, InspectionResult, RawOutputs, Region, Thresholds


def raw(score, amap, logits):
    return RawOutputs(score, np.asarray(amap, np.float32), np.asarray(logits), np.zeros(0))


def test_decide_good_and_defect():
    thr = Thresholds(image=1.5, pixel=1.0)
    amap = np.zeros((8, 8), np.float32)
    good = decide(raw(0.7, amap, [2.0, 0.0]), thr, ("good", "dent"), image_size=(16, 16))
    assert good.verdict == "good" and good.label == "good" and good.regions == [] and not good.mask.any()
    amap[2:4, 2:4] = 3.0
    bad = decide(raw(3.0, amap, [0.0, 2.0]), thr, ("good", "dent"), image_size=(16, 16))
    # the verdict follows the calibrated score; the type is the best *defect* class
    assert bad.verdict == "defect" and bad.label == "dent"
    assert bad.anomaly_map.shape == (16, 16) and len(bad.regions) == 1
    x0, y0, x1, y1 = bad.regions[0].box
    assert x0 <= 5 <= x1 and y0 <= 5 <= y1
    assert bad.regions[0].pixels.shape == (y1 - y0, x1 - x0)
    result = inspection_result(raw(3.0, amap, [0.0, 2.0]), classes=("good", "dent"), thresholds=thr, image_size=(16, 16))
    assert (result.verdict, result.label, len(result.defects)) == ("defect", "dent", 1)
    assert result.defects[0].box == bad.regions[0].box
    json.dumps(result.to_dict())  # JSON-serialisable


def test_anomaly_label_without_defect_classes():
    r = decide(raw(5.0, np.ones((4, 4)), [0.0]), Thresholds(1.0, 1.0, min_defect_area=1), ("good",))
    assert r.label == "anomaly"


CLASS_CASES = [  # (score, probabilities of good, pitting, dent)
    (3.0, (1.0, 0.0, 0.0)),  # the row: a defect the class head calls good
    (3.0, (0.5, 0.3, 0.2)),  # good ahead of every defect class, but not by much
    (3.0, (0.2, 0.5, 0.3)),  # the head backs pitting
    (3.0, (0.3, 0.3, 0.4)),  # dent ahead, good and pitting tied behind it
    (0.5, (0.0, 1.0, 0.0)),  # the other row: a good verdict, the head says pitting
    (0.5, (1.0, 0.0, 0.0)),
]


@pytest.mark.parametrize(("score", "probs"), CLASS_CASES)
def test_label_caption_and_probabilities_tell_one_story(score, probs):
    """A defect is named after the head's first defect class; where the head ranks good
    above it, the result and the caption say so (the type is only the nearest one)."""
    classes = ("good", "pitting", "dent")
    amap = np.zeros((8, 8), np.float32)
    amap[2:5, 2:5] = score
    logits = np.log(np.maximum(probs, 1e-9))
    result = inspection_result(
        raw(score, amap, logits), classes=classes, thresholds=Thresholds(1.0, 1.0, 1), image_size=(32, 32)
    )
    first = max(result.probabilities, key=result.probabilities.get)
    if not result.is_defective:
        assert result.label == "good" and result.caption.startswith("No defect found")
    elif first == "good":  # the head finds it nearer the good shots: the nearest type, hedged
        record = result.defects[0]
        nearest = max(classes[1:], key=result.probabilities.get)
        assert result.label == record.type == nearest and record.nearer_good
        assert result.caption.startswith(f"Possibly {nearest} (the nearest labelled type,")
    else:
        assert result.label == first != "good"  # a named type is the head's first choice
        assert not result.defects[0].nearer_good
        assert result.caption.lower().startswith((result.label, f"possibly {result.label}"))
    assert result.verdict == ("defect" if score >= 1.0 else "good")


def test_re_deciding_a_result_needs_only_its_raw_outputs():
    amap = np.zeros((8, 8), np.float32)
    amap[2:4, 2:4] = 3.0
    classes = ("good", "dent")
    result = inspection_result(raw(2.0, amap, [0.5, 1.0]), classes=classes, thresholds=Thresholds(1.5, 1.0), image_size=(16, 16))
    assert result.is_defective
    again = decide(result.raw, Thresholds(2.5, 1.0), classes, image_size=result.image_size)
    assert again.verdict == "good" and not again.mask.any()
    back = decide(result.raw, Thresholds(1.5, 1.0), classes, image_size=result.image_size)
    assert np.array_equal(back.mask, result.mask) and back.probabilities == result.probabilities


def test_one_threshold_rule_keeps_pixel_at_or_below_image():
    t = Thresholds(image=1.2, pixel=1.0, min_defect_area=9)
    assert t.with_image(0.5) == Thresholds(0.5, 0.5, 9)  # the pixel threshold follows down
    assert t.with_image(3.0) == Thresholds(3.0, 1.0, 9)  # ... but not up
    assert t.moved(image=0.5, pixel=0.8) == Thresholds(0.5, 0.8, 9)  # an explicit pixel wins
    assert t.moved(min_defect_area=4) == Thresholds(1.2, 1.0, 4)


def test_boxes_skip_defect_records_without_a_region():
    import dataclasses

    missing = dataclasses.MISSING
    required = {
        f.name: None for f in dataclasses.fields(InspectionResult)
        if f.default is missing and f.default_factory is missing
    }
    result = InspectionResult(**required)
    region = Region((1, 2, 5, 6), 9, (3.0, 4.0), 2.0, 1.5, np.ones((4, 4), bool))
    common = dict(type="dent", confidence=0.9, uncertain=False, nearer_good=False, note=None,
                  vocabulary=None, classified=True, stated=True, severity="minor", severity_ratio=1.1)
    result.defects = [DefectRecord(**common, localised=True, region=region),
                      DefectRecord(**common, localised=False)]  # fmt: skip
    assert result.boxes == [[1, 2, 5, 6]]
