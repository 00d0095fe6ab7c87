"""mask_geometry: the conventions synthetic ground truth and captions share."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops

from defectkit.core.geometry import angle_difference, mask_geometry


def test_rectangle():
    mask = np.zeros((40, 60), bool)
    mask[10:14, 5:25] = True  # 20 wide, 4 high
    g = mask_geometry(mask)
    assert g["bbox"] == (5, 10, 25, 14)  # end exclusive: mask[y0:y1, x0:x1]
    assert g["area_px"] == 80
    assert g["centre"] == (14.5, 11.5)
    assert g["orientation_deg"] == 0.0
    assert g["elongation"] == pytest.approx(5.0, rel=0.01)  # continuous 20 x 4 box


def test_orientation_is_counter_clockwise_on_screen():
    rising = np.zeros((50, 50), bool)
    for t in range(30):
        rising[40 - t, 5 + t] = True  # bottom-left to top-right on screen
    assert mask_geometry(rising)["orientation_deg"] == pytest.approx(45.0)
    falling = np.zeros((50, 50), bool)
    for t in range(30):
        falling[5 + t, 5 + t] = True
    assert mask_geometry(falling)["orientation_deg"] == pytest.approx(135.0)
    vertical = np.zeros((50, 50), bool)
    vertical[5:45, 20] = True
    g = mask_geometry(vertical)
    assert g["orientation_deg"] == pytest.approx(90.0)
    assert np.isfinite(g["elongation"]) and g["elongation"] > 30  # one pixel wide, finite


def test_agrees_with_scikit_image_on_random_blobs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = np.zeros((64, 64), bool)
        x0, y0 = rng.integers(0, 40, 2)
        w, h = rng.integers(3, 24, 2)
        mask[y0 : y0 + h, x0 : x0 + w] = rng.random((h, w)) < 0.8
        mask[y0, x0] = True
        props = regionprops(mask.astype(np.uint8))[0]
        g = mask_geometry(mask)
        assert g["area_px"] == props.area
        r0, c0, r1, c1 = props.bbox
        assert g["bbox"] == (c0, r0, c1, r1)
        assert g["centre"] == pytest.approx((props.centroid[1], props.centroid[0]), abs=0.01)
        if props.axis_major_length > 1.3 * props.axis_minor_length:  # orientation well defined
            theirs = (90.0 + np.degrees(props.orientation)) % 180.0
            assert angle_difference(g["orientation_deg"], theirs) < 0.1


def test_empty_mask_has_no_geometry():
    with pytest.raises(ValueError, match="empty"):
        mask_geometry(np.zeros((8, 8), bool))


def test_angle_difference_wraps_at_180():
    assert angle_difference(179.0, 1.0) == pytest.approx(2.0)
    assert angle_difference(10.0, 100.0) == pytest.approx(90.0)
