"""Defect areas read off the pixels inside a blurred region, checked against exact masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from defectkit.core.caption import describe
from defectkit.core.caption.size import estimate_area
from defectkit.core.decide import decide
from defectkit.core.results import RawOutputs, Thresholds
from defectkit.datasets import make_synthetic

CLASSES = ("good", "hole", "missing", "spot", "stain")


@pytest.fixture(scope="module")
def samples():
    return make_synthetic(n_good=1, defects={k: 4 for k in CLASSES[1:]}, size=(256, 256), seed=11)


def blurred(mask: np.ndarray, grow: int = 10) -> np.ndarray:
    """What a region cut from the patch-grid map looks like: the defect, much widened."""
    return ndimage.binary_dilation(mask, iterations=grow)


def measure(sample, region):
    ys, xs = np.nonzero(region)
    crop = region[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return estimate_area(sample.load_image(), crop, (int(xs.min()), int(ys.min())))


def test_sharp_edges_give_the_defect_area_not_the_region_area(samples):
    for sample in (s for s in samples if s.label in ("hole", "missing")):
        truth = int(sample.mask_array.sum())
        region = blurred(sample.mask_array)
        found = measure(sample, region)
        assert found.estimate == "about", (sample.key, found)
        assert abs(found.high / truth - 1.0) <= 0.25, (sample.key, found.high, truth)
        assert region.sum() > 1.5 * truth  # the region alone would have been far off


def test_every_statement_holds_as_worded(samples):
    for sample in (s for s in samples if s.label != "good"):
        truth = int(sample.mask_array.sum())
        found = measure(sample, blurred(sample.mask_array))
        if found.estimate == "about":
            assert abs(found.high / truth - 1.0) <= 0.25, (sample.key, found, truth)
        elif found.estimate == "between":
            assert found.low <= truth <= found.high, (sample.key, found, truth)
        else:
            assert found.high >= truth, (sample.key, found, truth)


def test_nothing_stands_out_in_plain_texture(samples):
    good = next(s for s in samples if s.label == "good")
    region = np.zeros((256, 256), bool)
    region[100:140, 90:150] = True
    found = measure(good, region)
    assert found.estimate == "up_to" and found.low is None
    assert found.high >= region.sum()  # widened once, so at least the region


def test_captions_word_the_area_by_what_the_pixels_support(samples):
    hole = next(s for s in samples if s.label == "hole")
    region = blurred(hole.mask_array)
    probs = np.array([0.02, 0.9, 0.03, 0.03, 0.02])

    def caption(image):
        raw = RawOutputs(2.5, region * 3.0, np.log(probs), np.zeros(0))
        decision = decide(raw, Thresholds(1.3, 1.0), CLASSES, image_size=region.shape)
        return describe(decision, raw, image=image)

    (rec,), sentence = caption(hole.load_image())
    g = rec.geometry
    assert g.area_estimate == "about" and g.area_low_px == g.area_high_px
    assert f"about {g.area_high_px:,} px" in sentence
    (rec,), sentence = caption(None)  # no image: the region's area, as an upper bound
    g = rec.geometry
    assert g.area_estimate == "up_to" and g.area_high_px == int(region.sum())
    assert f"up to {int(region.sum()):,} px" in sentence


def test_fast_dilation_and_hole_filling_equal_scipy():
    from scipy import ndimage

    from defectkit.core.caption.size import _dilate, _fill_holes

    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = rng.integers(1, 50, 2)
        mask = rng.random((h, w)) < rng.uniform(0.01, 0.7)
        for steps in (1, 6):
            assert (_dilate(mask, steps) == ndimage.binary_dilation(mask, iterations=steps)).all()
        assert (_fill_holes(mask) == ndimage.binary_fill_holes(mask)).all()
