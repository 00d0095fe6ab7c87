"""Augmented copies of good shots: reproducible, and never the original again."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.fewshot.augment import augment_shots


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_copy_differs_from_its_original_and_the_draw_is_reproducible(seed):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(2)]
    out, owner = augment_shots(images, 3, seed=seed)
    assert owner == [0, 0, 0, 0, 1, 1, 1, 1]
    for k, (image, shot) in enumerate(zip(out, owner, strict=True)):
        original = k in (0, 4)
        same = image.shape == images[shot].shape and np.array_equal(image, images[shot])
        assert same == original, (seed, k)
    again, _ = augment_shots(images, 3, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_with_a_region_of_interest_only_the_region_changes_and_a_frame_stays_on_its_edge(size):
    # A 1-px white frame on the top and left edges, left out by the region (1, 1, w, h):
    # a copy flipped or rotated as a whole would carry the frame to the bottom or right
    # edge of the region, into what is inspected.
    rng = np.random.default_rng(1)
    h, w = size
    image = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
    image[0, :] = 255
    image[:, 0] = 255
    out, owner = augment_shots([image], 6, seed=3, boxes=[(1, 1, w, h)])
    assert owner == [0] * 7 and out[0] is image
    for copy in out[1:]:
        assert copy.shape == image.shape
        assert np.array_equal(copy[0, :], image[0, :]) and np.array_equal(copy[:, 0], image[:, 0])
        inside = copy[1:, 1:]
        assert not np.array_equal(inside, image[1:, 1:])
        # no frame line inside the region: no row or column of it is all white
        assert (
            not (inside == 255).all(axis=(1, 2)).any()
            and not (inside == 255).all(axis=(0, 2)).any()
        )
    # Without a region, copies are drawn as before (the same stream for the same seed).
    plain, _ = augment_shots([image], 6, seed=3)
    again, _ = augment_shots([image], 6, seed=3, boxes=[(0, 0, w, h)])
    assert all(np.array_equal(a, b) for a, b in zip(plain, again, strict=True))
