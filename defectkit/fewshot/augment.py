"""Augmentations that enlarge the memory bank from a handful of good shots.

Flips, 90-degree rotations, small shifts and mild photometric jitter: the variations a
good part shows on a line (orientation on the belt, placement, lighting) without
inventing defects. Implemented with albumentations, seeded for reproducible fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def create_augmenter(seed: int, *, rotate: bool = True):
    """An albumentations pipeline for H x W x 3 uint8 images, seeded; without 90-degree
    rotations when ``rotate`` is False (a copy that must keep its shape)."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            *([A.RandomRotate90(p=0.5)] if rotate else []),
            A.Affine(translate_percent=(-0.04, 0.04), border_mode=4, p=0.7),  # 4 = reflect_101
            A.ColorJitter(brightness=0.08, contrast=0.08, saturation=0.05, hue=0.0, p=0.7),
        ],
        seed=seed,
    )


def augment_shots(
    images: list[np.ndarray],
    copies: int,
    *,
    seed: int = 0,
    boxes: Sequence[tuple[int, int, int, int]] | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Each image plus ``copies`` augmented versions.

    With each image's region of interest (``boxes``: x0, y0, x1, y1 clipped to the
    image, :func:`defectkit.core.tiling.clip_box`; a frame the images share, or the
    configured region) only that region is transformed and the rest of each copy is its
    original's: a flipped whole image would carry a frame or a fixture from the edge
    it belongs to into the region that is inspected, and teach the bank what no
    inspected image shows. A non-square region is then not rotated by 90 degrees (the
    copy keeps its original's size, so the region lies where it lies in every image).

    Returns:
        (images, owner) where ``owner[j]`` is the index of the shot image ``j`` came from;
        the original of every shot comes first in its group.
    """
    out: list[np.ndarray] = []
    owner: list[int] = []
    augmenters: dict[bool, object] = {}
    for i, image in enumerate(images):
        out.append(image)
        owner.append(i)
        if not copies:
            continue
        h, w = image.shape[:2]
        box = None if boxes is None or tuple(boxes[i]) == (0, 0, w, h) else boxes[i]
        if box is None:
            view, rotate = image, True
        else:
            x0, y0, x1, y1 = box
            view = np.ascontiguousarray(image[y0:y1, x0:x1])
            rotate = view.shape[0] == view.shape[1]
        if rotate not in augmenters:  # one seeded stream per kind, as one augmenter had
            augmenters[rotate] = create_augmenter(seed, rotate=rotate)
        for _ in range(copies):
            changed = _changed_copy(augmenters[rotate], view)
            if box is not None:
                whole = image.copy()
                whole[y0:y1, x0:x1] = changed
                changed = whole
            out.append(changed)
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
