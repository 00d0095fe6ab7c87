"""Helpers for building tiny dataset layouts in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_image(path: Path, shape=(16, 16), value: int = 128) -> Path:
    """Write an H x W RGB image of one grey value (plus a gradient so files differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = shape
    image = np.full((h, w, 3), value, dtype=np.uint8)
    image[:, :, 0] = (np.arange(w) * 7 + value) % 256
    Image.fromarray(image).save(path)
    return path


def save_mask(path: Path, shape=(16, 16), box=(2, 2, 6, 6)) -> Path:
    """Write an H x W mask (0/255) with a rectangle (x0, y0, x1, y1) set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(shape, dtype=np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(path)
    return path


@pytest.fixture
def image_file():
    return save_image


@pytest.fixture
def mask_file():
    return save_mask
