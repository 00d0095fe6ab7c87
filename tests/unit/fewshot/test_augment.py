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
