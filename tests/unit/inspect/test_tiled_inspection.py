"""Real images through the tiled inspector (embedded efficientnet_lite0, synthetic parts).

Nothing is squashed: a non-square image's defect is reported where it is, a large image
cut into many tiles is judged as one big tile would judge it, a border every image
shares is learned as normal, and a region of interest keeps what lies outside it out of
the verdict.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from defectkit.core.tiling import TileSpec, plan_tiles
from defectkit.datasets import make_synthetic
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector


def _fit(samples, **config) -> Inspector:
    inspector = Inspector(InspectorConfig(bank_size=1024, defect_bank_size=256, seed=0, **config))
    inspector.fit(samples)
    return inspector


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# ------------------------------------------------------------------ non-square images
@pytest.fixture(scope="module")
def wide():
    """96 x 320 parts, fitted on 64 x 128 tiles (several tiles per image, both axes)."""
    samples = make_synthetic(n_good=4, defects={"hole": 4}, size=(96, 320), seed=21, texture="metal")
    shots, rest = samples[:2] + samples[4:6], samples[2:4] + samples[6:]
    return _fit(shots, tile_size=(64, 128), tile_margin=16), rest


def test_a_wide_image_is_tiled_and_its_defect_box_lands_on_the_defect(wide):
    inspector, rest = wide
    assert inspector.model.tiles.size == (64, 128)
    assert plan_tiles(inspector.model.tiles, (96, 320)).n_tiles >= 4
    defects = [s for s in rest if s.label == "hole"]
    assert len(defects) == 2
    results = inspector.inspect([s.load_image() for s in defects])
    for sample, result in zip(defects, results, strict=True):
        assert result.anomaly_map.shape == (96, 320)
        assert result.verdict == "defect", sample.key
        truth = _box_of(sample.load_mask())
        assert _overlap(result.defects[0].box, truth), (sample.key, result.defects[0].box, truth)
        # the map's peak lies on (or right beside) the defect, in original pixels
        y, x = np.unravel_index(np.argmax(result.anomaly_map), result.anomaly_map.shape)
        assert truth[0] - 8 <= x < truth[2] + 8 and truth[1] - 8 <= y < truth[3] + 8


# ------------------------------------------------------------------ large images
@pytest.fixture(scope="module")
def large():
    """300 x 700 parts on 128 x 128 tiles (40 tiles an image)."""
    samples = make_synthetic(n_good=3, defects={"scratch": 3}, size=(300, 700), seed=22, texture="fabric")
    shots = [samples[0], samples[1], samples[3], samples[4]]
    return _fit(shots, tile_size=(128, 128)), [samples[2], samples[5]]


def test_many_tiles_judge_a_large_image_as_one_big_tile_does(large):
    inspector, (good, scratch) = large
    images = [good.load_image(), scratch.load_image()]
    assert plan_tiles(inspector.model.tiles, (300, 700)).n_tiles >= 20
    tiled = inspector.inspect(images)
    one = Inspector.from_model(inspector.model)  # the same banks and head ...
    spec = inspector.model.tiles
    one.model.set_tiles(TileSpec(size=(304, 704), stride=spec.stride, margin=spec.margin))  # ... one tile
    try:
        assert plan_tiles(one.model.tiles, (300, 700)).n_tiles == 1
        whole = one.inspect(images)
    finally:
        inspector.model.set_tiles(spec)
    assert [r.verdict for r in tiled] == [r.verdict for r in whole] == ["good", "defect"]
    assert [r.label for r in tiled] == [r.label for r in whole]
    for a, b in zip(tiled, whole, strict=True):
        assert a.score == pytest.approx(b.score, rel=0.1), (a.score, b.score)
        # the maps agree cell by cell (a good part's map is flat noise: no shape to compare) ...
        assert np.abs(a.anomaly_map - b.anomaly_map).mean() < 0.1 * b.anomaly_map.mean()
    # ... and the defect's map has the same shape
    assert np.corrcoef(tiled[1].anomaly_map.ravel(), whole[1].anomaly_map.ravel())[0, 1] > 0.9


# ------------------------------------------------------------------ a border every image has
def _framed(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[0, :] = 255  # a 1-px bright frame on the top edge ...
    out[:, 0] = 255  # ... and the left edge, in every image the line gives
    return out


def test_a_frame_in_every_image_and_shot_does_not_raise_good_scores():
    samples = make_synthetic(n_good=6, defects={"spot": 2}, size=(160, 256), seed=23, texture="fabric")
    framed = [replace(s, image_array=_framed(s.load_image())) for s in samples]
    shots = framed[:2] + framed[6:]
    inspector = Inspector(InspectorConfig(bank_size=1024, defect_bank_size=256, seed=0, tile_size=(128, 128)))
    report = inspector.fit(shots)
    # Found and left out: the region of interest starts past it
    assert report.frame.describe() == "1 px on the top and left edges"
    assert inspector.model.tiles.roi[:2] == (1, 1)
    goods = [s.load_image() for s in framed[2:6]]
    results = inspector.inspect(goods)
    threshold = inspector.thresholds.image
    assert all(r.verdict == "good" for r in results), [(r.score, threshold) for r in results]
    assert max(r.score for r in results) < threshold
    # The frame itself is not inspected: nothing is mapped on it.
    for r in results:
        assert not r.anomaly_map[0].any() and not r.anomaly_map[:, 0].any()
        assert r.anomaly_map[1:, 1:].max() > 0
    # A region of interest the user sets is theirs: no frame is looked for inside it.
    roi = (0, 0, 256, 160)
    mine = Inspector(InspectorConfig(bank_size=1024, defect_bank_size=256, seed=0, tile_size=(128, 128), roi=roi))
    assert not mine.fit(shots).frame and mine.model.tiles.roi == roi


# ------------------------------------------------------------------ region of interest
ROI = (0, 0, 128, 128)  # the left half of a 128 x 256 image


def _square(image: np.ndarray, x: int, y: int, size: int = 16) -> np.ndarray:
    out = image.copy()
    out[y : y + size, x : x + size] = 0
    return out


@pytest.fixture(scope="module")
def roi_fitted():
    samples = make_synthetic(n_good=5, size=(128, 256), seed=24, texture="fabric")
    return _fit(samples[:3], roi=ROI), [s.load_image() for s in samples[3:]]


def test_the_roi_keeps_a_defect_outside_it_out_and_one_inside_it_in(roi_fitted):
    inspector, goods = roi_fitted
    assert inspector.model.tiles.roi == ROI
    outside = _square(goods[0], 180, 56)
    inside = _square(goods[0], 56, 56)
    clean, out_r, in_r = inspector.inspect([goods[0], outside, inside])
    assert clean.verdict == "good" and out_r.verdict == "good"
    assert out_r.score == pytest.approx(clean.score, rel=1e-6)  # the outside is never seen
    for r in (clean, out_r, in_r):
        assert r.anomaly_map.shape == (128, 256)
        assert not r.anomaly_map[:, 128:].any(), "nothing is mapped outside the region"
    assert in_r.verdict == "defect" and in_r.score > inspector.thresholds.image
    y, x = np.unravel_index(np.argmax(in_r.anomaly_map), in_r.anomaly_map.shape)
    assert 48 <= x < 80 and 48 <= y < 80
    assert all(d.box[2] <= 128 for d in in_r.defects)
