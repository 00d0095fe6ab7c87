"""Augmentations that enlarge the memory bank from a handful of good shots.

Flips, 90-degree rotations, small shifts and mild photometric jitter: the variations a
good part shows on a line (orientation on the belt, placement, lighting) without
inventing defects. Implemented with albumentations, seeded for reproducible fits.
"""

from __future__ import annotations

import numpy as np


def create_augmenter(seed: int):
    """An albumentations pipeline for H x W x 3 uint8 images, seeded."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(translate_percent=(-0.04, 0.04), border_mode=4, p=0.7),  # 4 = reflect_101
            A.ColorJitter(brightness=0.08, contrast=0.08, saturation=0.05, hue=0.0, p=0.7),
        ],
        seed=seed,
    )


def augment_shots(images: list[np.ndarray], copies: int, *, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Each image plus ``copies`` augmented versions.

    Returns:
        (images, owner) where ``owner[j]`` is the index of the shot image ``j`` came from;
        the original of every shot comes first in its group.
    """
    augmenter = create_augmenter(seed) if copies else None
    out: list[np.ndarray] = []
    owner: list[int] = []
    for i, image in enumerate(images):
        out.append(image)
        owner.append(i)
        for _ in range(copies):
            out.append(_changed_copy(augmenter, image))
            owner.append(i)
    return out, owner


#: Draws tried for a copy that differs from its original.
MAX_DRAWS = 10


def _changed_copy(augmenter, image: np.ndarray) -> np.ndarray:
    """An augmented copy that differs from ``image``: every transform is optional, so a
    draw can leave it untouched (albumentations' first draws with some seeds do), and a
    copy equal to its original teaches nothing; for a lone good shot, whose left-out bank
    is its copies, it would make the shot's left-out score zero."""
    copy = image
    for _ in range(MAX_DRAWS):
        copy = augmenter(image=image)["image"]
        if copy.shape != image.shape or not np.array_equal(copy, image):
            break
    return copy
