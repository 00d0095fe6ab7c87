"""The folder layout: ROOT/<class>/*.png, masks/, notes.json, meta.json; and writing it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.datasets import Sample, load_folder, make_synthetic, write_folder
from defectkit.errors import DatasetError, ImageError


@pytest.fixture
def layout(tmp_path, image_file, mask_file):
    root = tmp_path / "data"
    image_file(root / "good" / "b.png")
    image_file(root / "good" / "a.jpg")
    image_file(root / "scratch" / "img3.png")
    image_file(root / "scratch" / "img1.png")
    image_file(root / "crack" / "c.tiff")
    mask_file(root / "masks" / "scratch" / "img3.bmp", box=(1, 1, 5, 3))  # any suffix
    (root / "good" / ".hidden.png").write_bytes(b"junk")
    (root / "good" / "README.txt").write_text("not an image")
    (root / ".cache").mkdir()
    image_file(root / ".cache" / "x.png")
    notes = {"scratch/img3.png": "long scratch near the edge"}
    (root / "notes.json").write_text(json.dumps(notes))
    return root


def test_lists_classes_and_files_sorted_skipping_hidden_and_non_images(layout):
    samples = load_folder(layout)
    assert [s.key for s in samples] == [
        "crack/c.tiff",
        "good/a.jpg",
        "good/b.png",
        "scratch/img1.png",
        "scratch/img3.png",
    ]
    assert [s.label for s in samples] == ["crack", "good", "good", "scratch", "scratch"]


def test_masks_and_notes_are_attached(layout):
    by_name = {s.key: s for s in load_folder(layout)}
    scratch = by_name["scratch/img3.png"]
    assert scratch.mask_path.name == "img3.bmp"
    assert scratch.note == "long scratch near the edge"
    assert scratch.load_mask().sum() == 8
    assert by_name["scratch/img1.png"].mask_path is None
    assert by_name["scratch/img1.png"].note is None


def test_notes_that_do_not_parse(layout):
    (layout / "notes.json").write_text("{not json")
    with pytest.raises(DatasetError, match="notes.json: cannot parse"):
        load_folder(layout)


def test_notes_must_be_an_object_of_text(layout):
    (layout / "notes.json").write_text(json.dumps(["scratch/img3.png"]))
    with pytest.raises(DatasetError, match="must be an object"):
        load_folder(layout)
    (layout / "notes.json").write_text(json.dumps({"scratch/img3.png": 3}))
    with pytest.raises(DatasetError, match="must be text"):
        load_folder(layout)


def test_notes_naming_missing_files(layout):
    (layout / "notes.json").write_text(json.dumps({"scratch/img9.png": "gone"}))
    with pytest.raises(DatasetError, match="1 missing image.*'scratch/img9.png'"):
        load_folder(layout)


def test_orphan_mask_is_an_error(layout, mask_file):
    mask_file(layout / "masks" / "scratch" / "renamed.png")
    with pytest.raises(DatasetError, match="renamed.png: mask without an image"):
        load_folder(layout)


def test_mask_folder_for_an_unknown_class(layout, mask_file):
    mask_file(layout / "masks" / "dent" / "img3.png")
    with pytest.raises(DatasetError, match="class 'dent', which has no folder"):
        load_folder(layout)


def test_two_masks_for_one_image(layout, mask_file):
    mask_file(layout / "masks" / "scratch" / "img3.png")
    with pytest.raises(DatasetError, match="two masks"):
        load_folder(layout)


def test_mask_size_mismatch_is_reported_on_load(layout, mask_file):
    mask_file(layout / "masks" / "scratch" / "img1.png", shape=(8, 8))
    sample = next(s for s in load_folder(layout) if s.key == "scratch/img1.png")
    with pytest.raises(ImageError, match="img1.png: mask is 8x8 but its image is 16x16"):
        sample.load_mask()


def test_unreadable_image_is_reported_with_its_name(layout):
    (layout / "good" / "b.png").write_bytes(b"\x89PNG truncated")
    sample = next(s for s in load_folder(layout) if s.key == "good/b.png")
    with pytest.raises(ImageError, match="b.png"):
        sample.load_image()


def test_missing_and_empty_folders(tmp_path, image_file):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_folder(tmp_path / "nope")
    (tmp_path / "good").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_folder(tmp_path)
    image_file(tmp_path / "stray.png")
    with pytest.raises(DatasetError, match="1 images lie directly in ROOT"):
        load_folder(tmp_path)


def test_write_then_load_round_trips_synthetic_samples(tmp_path):
    samples = make_synthetic(n_good=2, defects=["scratch", "hole"], size=48, seed=1)
    samples[2] = Sample(
        label=samples[2].label,
        image_array=samples[2].image_array,
        mask_array=samples[2].mask_array,
        note="bright scratch",
        meta=samples[2].meta,
    )
    loaded = load_folder(write_folder(samples, tmp_path / "out"))
    assert [s.key for s in loaded] == [
        "good/good_000.png",
        "good/good_001.png",
        "hole/hole_000.png",
        "scratch/scratch_000.png",
    ]
    originals = {s.meta["id"]: s for s in samples}
    for sample in loaded:
        original = originals[sample.path.stem]
        assert np.array_equal(sample.load_image(), original.load_image())  # PNG is lossless
        if original.mask_array is None:
            assert sample.mask_path is None
        else:
            assert np.array_equal(sample.load_mask(), original.mask_array)
        expected = {k: v for k, v in original.meta.items() if k != "id"}
        assert {k: v for k, v in sample.meta.items() if k != "id"} == expected
    assert loaded[3].note == "bright scratch"


def test_write_copies_files_byte_for_byte_and_renames_clashes(tmp_path, image_file, mask_file):
    a = image_file(tmp_path / "src" / "train" / "000.jpg")
    b = image_file(tmp_path / "src" / "test" / "000.png", value=40)
    m = mask_file(tmp_path / "src" / "000_mask.png")
    samples = [
        Sample(label="good", path=a, meta={"id": "bottle/train/good/000.jpg"}),
        Sample(label="good", path=b, meta={"id": "bottle/test/good/000.png"}),
        Sample(label="broken", path=b, mask_path=m),
    ]
    root = write_folder(samples, tmp_path / "out")
    assert (root / "good" / "000.jpg").read_bytes() == a.read_bytes()
    # Same stem as 000.jpg: masks match by stem, so the second file gets its flattened id.
    assert (root / "good" / "bottle_test_good_000.png").read_bytes() == b.read_bytes()
    assert (root / "masks" / "broken" / "000.png").is_file()
    assert len(load_folder(root)) == 3


def test_write_refuses_a_non_empty_folder_and_bad_labels(tmp_path, image_file):
    sample = Sample(label="good", path=image_file(tmp_path / "a.png"))
    with pytest.raises(DatasetError, match="not an empty folder"):
        write_folder([sample], tmp_path)
    for label in ("masks", "a/b", ".hidden"):
        with pytest.raises(DatasetError, match="cannot be a folder name"):
            write_folder(
                [Sample(label=label, path=sample.path)], tmp_path / label.replace("/", "_")
            )
    with pytest.raises(DatasetError, match="empty"):
        write_folder([], tmp_path / "none")
