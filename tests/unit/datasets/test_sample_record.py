"""Sample: the record every loader returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectkit.datasets import GOOD, Sample
from defectkit.errors import DatasetError, ImageError


def test_good_is_the_good_label():
    assert GOOD == "good"


def test_file_sample_loads_rgb_and_its_mask(tmp_path, image_file, mask_file):
    image = image_file(tmp_path / "a.png", shape=(12, 20))
    mask = mask_file(tmp_path / "a_mask.png", shape=(12, 20), box=(1, 2, 4, 5))
    sample = Sample(label="scratch", path=str(image), mask_path=mask)
    assert isinstance(sample.path, Path)  # strings are accepted and normalised
    loaded = sample.load_image()
    assert loaded.shape == (12, 20, 3) and loaded.dtype == np.uint8
    m = sample.load_mask()
    assert m.shape == (12, 20) and m.dtype == bool and m.sum() == 9
    assert sample.name == "a.png"


def test_name_is_the_file_name_or_the_synthetic_id_key_is_unique():
    image = np.zeros((8, 8, 3), np.uint8)
    assert Sample(label="good", image_array=image).name == "<array>"
    assert Sample(label="good", image_array=image).key == "<array>"
    synthetic = Sample(label="good", image_array=image, meta={"id": "good_001"})
    assert synthetic.name == synthetic.key == "good_001"
    loaded = Sample(label="good", path=Path("x/y.png"), meta={"id": "good/y.png"})
    assert (loaded.name, loaded.key) == ("y.png", "good/y.png")
    assert Sample(label="good", path=Path("x/y.png")).key == "x/y.png"


def test_array_sample_returns_a_copy_the_caller_may_change():
    image = np.full((8, 8, 3), 7, np.uint8)
    sample = Sample(label="good", image_array=image)
    first = sample.load_image()
    first[:] = 0
    assert (sample.load_image() == 7).all()
    assert sample.load_mask() is None


def test_gray_array_is_converted_to_rgb():
    sample = Sample(label="good", image_array=np.zeros((8, 9), np.uint8))
    assert sample.load_image().shape == (8, 9, 3)


def test_meta_is_a_private_copy():
    meta = {"id": "a"}
    sample = Sample(label="good", image_array=np.zeros((8, 8, 3), np.uint8), meta=meta)
    meta["id"] = "b"
    assert sample.name == "a"


def test_equality_and_hash_ignore_arrays_and_meta(tmp_path):
    a = Sample(label="good", path=tmp_path / "a.png", meta={"x": 1})
    b = Sample(label="good", path=tmp_path / "a.png", meta={"x": 2})
    assert a == b and hash(a) == hash(b)
    assert a != Sample(label="scratch", path=tmp_path / "a.png")


def test_sample_needs_an_image_and_a_label():
    with pytest.raises(DatasetError, match="neither a path nor an image"):
        Sample(label="good")
    with pytest.raises(DatasetError, match="label"):
        Sample(label="", image_array=np.zeros((8, 8, 3), np.uint8))


def test_unreadable_image_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="broken.png"):
        Sample(label="good", path=bad).load_image()
    with pytest.raises(ImageError, match="missing.png"):
        Sample(label="good", path=tmp_path / "missing.png").load_image()


def test_mask_of_unreadable_image_names_the_image(tmp_path, mask_file):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    sample = Sample(label="hole", path=bad, mask_path=mask_file(tmp_path / "m.png"))
    with pytest.raises(ImageError, match="broken.png"):
        sample.load_mask()


def test_mask_file_of_the_wrong_size_is_refused(tmp_path, image_file, mask_file):
    image = image_file(tmp_path / "a.png", shape=(16, 16))
    mask = mask_file(tmp_path / "a_mask.png", shape=(16, 12))
    with pytest.raises(ImageError, match="a_mask.png.*12x16.*16x16"):
        Sample(label="hole", path=image, mask_path=mask).load_mask()


def test_mask_array_of_the_wrong_size_is_refused(tmp_path, image_file):
    with pytest.raises(DatasetError, match="mask is 4x8 but the image is 8x8"):
        Sample(
            label="hole",
            image_array=np.zeros((8, 8, 3), np.uint8),
            mask_array=np.zeros((8, 4), bool),
        )
    on_disk = Sample(
        label="hole",
        path=image_file(tmp_path / "a.png", shape=(16, 16)),
        mask_array=np.zeros((8, 8), bool),
        meta={"id": "hole/a.png"},
    )
    with pytest.raises(DatasetError, match="hole/a.png"):
        on_disk.load_mask()


def test_mask_array_must_be_two_dimensional():
    with pytest.raises(DatasetError, match="H x W"):
        Sample(
            label="hole", image_array=np.zeros((8, 8, 3), np.uint8), mask_array=np.zeros((8, 8, 3))
        )
