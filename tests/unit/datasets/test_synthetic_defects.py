"""Synthetic defects: exact masks, truthful ground truth, reproducible, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from skimage.measure import regionprops

from defectkit.datasets import (
    angle_difference,
    list_defect_types,
    list_textures,
    make_synthetic,
)
from defectkit.datasets.defects import draw_defect
from defectkit.datasets.textures import make_texture
from defectkit.errors import DatasetError

KINDS = list_defect_types()


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(n_good=4, defects={kind: 6 for kind in KINDS}, seed=0)


def test_kinds_and_textures_listed():
    assert KINDS == ["scratch", "spot", "crack", "hole", "stain", "missing"]
    assert list_textures() == ["fabric", "metal", "noise", "sample"]


def test_order_labels_and_ids(dataset):
    assert len(dataset) == 4 + 6 * len(KINDS)
    assert [s.name for s in dataset[:5]] == [
        "good_000",
        "good_001",
        "good_002",
        "good_003",
        "scratch_000",
    ]
    assert [s.label for s in dataset[4:]] == [k for k in KINDS for _ in range(6)]
    for sample in dataset:
        assert sample.path is None
        image = sample.load_image()
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert all(s.mask_array is None for s in dataset[:4])


def test_sequence_of_kinds_keeps_the_order_asked():
    samples = make_synthetic(n_good=0, defects=["hole", "scratch", "hole"], size=64)
    assert [s.name for s in samples] == ["hole_000", "scratch_000", "hole_001"]
    assert [s.name for s in make_synthetic(n_good=0, defects="spot", size=64)] == ["spot_000"]


def test_meta_matches_the_mask_exactly(dataset):
    for sample in dataset[4:]:
        mask, meta = sample.load_mask(), sample.meta
        assert mask.dtype == bool and mask.any()
        props = regionprops(mask.astype(np.uint8))[0]  # an independent measurement
        assert meta["type"] == sample.label
        assert meta["area_px"] == int(mask.sum())
        r0, c0, r1, c1 = props.bbox
        assert meta["bbox"] == (c0, r0, c1, r1)
        cx, cy = meta["centre"]
        assert abs(cx - props.centroid[1]) < 1 and abs(cy - props.centroid[0]) < 1
        assert meta["elongation"] >= 1.0
        assert 0.0 <= meta["orientation_deg"] < 180.0


def test_scratch_orientation_is_the_drawn_angle(dataset):
    scratches = [s for s in dataset if s.label == "scratch"]
    angles = [s.meta["params"]["angle_deg"] for s in scratches]
    for sample, angle in zip(scratches, angles, strict=True):
        assert angle_difference(sample.meta["orientation_deg"], angle) < 3.0
        assert sample.meta["elongation"] > 10  # thin and long
    assert max(angles) - min(angles) > 30  # orientations vary within the class


def test_cracks_are_elongated_along_their_direction(dataset):
    for sample in (s for s in dataset if s.label == "crack"):
        assert sample.meta["elongation"] > 2.5
        assert (
            angle_difference(sample.meta["orientation_deg"], sample.meta["params"]["angle_deg"])
            < 30
        )


def test_compact_defects_are_compact(dataset):
    for sample in (s for s in dataset if s.label in ("spot", "hole")):
        assert sample.meta["elongation"] < 1.6


@pytest.mark.parametrize("texture", ["fabric", "metal", "noise", "sample"])
@pytest.mark.parametrize("kind", KINDS)
def test_defect_changes_only_masked_pixels(texture, kind):
    rng = np.random.default_rng(3)
    clean = make_texture(texture, (96, 128), rng)
    drawn = draw_defect(kind, clean, rng)
    as_uint8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    before, after = as_uint8(clean), as_uint8(drawn.image)
    assert np.array_equal(after[~drawn.mask], before[~drawn.mask])
    change = np.abs(after.astype(int) - before.astype(int)).mean(axis=2)[drawn.mask]
    assert change.mean() >= 10  # visible
    assert (change > 0).mean() > 0.9  # the mask is not padded with untouched pixels


def test_contrast_is_visible_but_realistic(dataset):
    for sample in dataset[4:]:
        contrast = abs(sample.meta["contrast"])
        assert contrast >= 15, sample.name
        if sample.label not in ("hole", "missing"):  # those show the dark background
            assert contrast <= 90, sample.name


def test_same_class_varies_in_place_and_size(dataset):
    for kind in KINDS:
        group = [s.meta for s in dataset if s.label == kind]
        assert len({m["centre"] for m in group}) == len(group)
        assert len({m["area_px"] for m in group}) > 1


def test_good_images_vary_slightly(dataset):
    goods = [s.load_image().astype(float) for s in dataset[:4]]
    means = [g.mean() for g in goods]
    assert max(means) - min(means) < 15  # same product, similar brightness
    assert not np.array_equal(goods[0], goods[1])  # but not the same pixels


def test_reproducible_and_independent_of_the_other_requests():
    a = make_synthetic(n_good=2, defects={"scratch": 2, "stain": 1}, size=64, seed=5)
    b = make_synthetic(n_good=2, defects={"scratch": 2, "stain": 1}, size=64, seed=5)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.load_image(), y.load_image()) and x.meta == y.meta
    c = make_synthetic(n_good=5, defects={"stain": 1, "scratch": 3}, size=64, seed=5)
    by_name = {s.name: s for s in c}
    for sample in a:
        assert np.array_equal(sample.load_image(), by_name[sample.name].load_image())
    d = make_synthetic(n_good=2, defects={"scratch": 2, "stain": 1}, size=64, seed=6)
    assert not np.array_equal(a[2].load_image(), d[2].load_image())


def test_non_square_and_small_sizes():
    for sample in make_synthetic(n_good=1, defects=KINDS, size=(48, 80), seed=2):
        assert sample.load_image().shape == (48, 80, 3)
        if sample.mask_array is not None:
            assert sample.load_mask().shape == (48, 80)


def test_fast_enough_for_tests():
    start = time.perf_counter()
    make_synthetic(n_good=20, defects={kind: 5 for kind in KINDS})
    assert time.perf_counter() - start < 5.0  # about 0.4 s on one core; slack for busy CI


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_good": 1, "defects": ["dent"]}, "unknown defect type 'dent'"),
        ({"n_good": 1, "texture": "wood"}, "unknown texture 'wood'"),
        ({"n_good": 1, "size": 16}, "size must be"),
        ({"n_good": 1, "defects": {"hole": -1}}, "must be an int >= 0"),
        ({"n_good": -1}, "n_good must be"),
        ({"n_good": 1, "seed": -3}, "seed must be"),
        ({"n_good": 0}, "nothing to make"),
    ],
)
def test_bad_requests(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        make_synthetic(**kwargs)
