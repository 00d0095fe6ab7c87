import io

import numpy as np
import pytest
from PIL import Image

from defectkit.core import images
from defectkit.errors import ImageError


def _png(array, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_gray_rgba_and_16bit_are_converted():
    gray = np.full((20, 30), 100, np.uint8)
    assert images.read_image(_png(gray)).shape == (20, 30, 3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    out = images.read_image(_png(rgba))
    assert out.shape == (20, 30, 3) and out[0, 0, 0] == 200
    sixteen = np.full((20, 30), 65535 // 2, np.uint16)
    out = images.read_image(_png(sixteen))
    assert out.dtype == np.uint8 and abs(int(out[0, 0, 0]) - 128) <= 1


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"not an image at all", "not an image"), (_png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))[:2000], "truncated")],
)
def test_bad_bytes_are_clear_errors(data, message):
    with pytest.raises(ImageError, match=message):
        images.read_image(data)


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="decompression bomb"):
        images.read_image(_png(np.zeros((20, 20), np.uint8)))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageError, match="nope.png"):
        images.read_image(tmp_path / "nope.png")


def test_mask_of_wrong_size_is_refused(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(path)
    with pytest.raises(ImageError, match="mask is 12x10"):
        images.read_mask(path, (10, 10))


def test_preprocess_shapes_and_range():
    batch = images.preprocess([np.full((50, 60, 3), 255, np.uint8), np.zeros((10, 10), np.uint8)], (32, 48))
    assert batch.shape == (2, 3, 32, 48) and batch.dtype == np.float32
    assert batch[0].min() == 1.0 and batch[1].max() == 0.0
