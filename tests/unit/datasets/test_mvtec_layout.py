"""MVTec AD layout, built tiny in tmp_path."""

from __future__ import annotations

import pytest

from defectkit.datasets import load_mvtec
from defectkit.errors import DatasetError


@pytest.fixture
def mvtec(tmp_path, image_file, mask_file):
    root = tmp_path / "mvtec"
    for category in ("bottle", "cable"):
        cat = root / category
        image_file(cat / "train" / "good" / "000.png")
        image_file(cat / "train" / "good" / "001.png")
        image_file(cat / "test" / "good" / "000.png")
        image_file(cat / "test" / "broken_large" / "000.png")
        image_file(cat / "test" / "broken_large" / "001.png")
        image_file(cat / "test" / "contamination" / "000.png")
        mask_file(cat / "ground_truth" / "broken_large" / "000_mask.png")
        mask_file(cat / "ground_truth" / "contamination" / "000_mask.png")
        (cat / "license.txt").write_text("CC BY-NC-SA 4.0")
    (root / "readme.txt").write_text("not a category")
    return root


def test_all_categories_train_first(mvtec):
    samples = load_mvtec(mvtec)
    names = [s.key for s in samples]
    assert names[:6] == [
        "bottle/train/good/000.png",
        "bottle/train/good/001.png",
        "bottle/test/broken_large/000.png",
        "bottle/test/broken_large/001.png",
        "bottle/test/contamination/000.png",
        "bottle/test/good/000.png",
    ]
    assert len(samples) == 12 and names[6].startswith("cable/train/")
    assert {s.meta["category"] for s in samples} == {"bottle", "cable"}


def test_labels_and_masks(mvtec):
    by_name = {s.key: s for s in load_mvtec(mvtec, category="bottle", split="test")}
    assert len(by_name) == 4
    broken = by_name["bottle/test/broken_large/000.png"]
    assert broken.label == "broken_large" and broken.meta["split"] == "test"
    assert broken.mask_path.name == "000_mask.png"
    assert broken.load_mask().sum() == 16
    # Missing ground truth -> no mask (as anomalib); good images never get one.
    assert by_name["bottle/test/broken_large/001.png"].mask_path is None
    assert by_name["bottle/test/good/000.png"].label == "good"
    assert by_name["bottle/test/good/000.png"].mask_path is None


def test_train_split_is_good_only(mvtec):
    samples = load_mvtec(mvtec, split="train")
    assert len(samples) == 4 and {s.label for s in samples} == {"good"}


def test_root_may_be_one_category(mvtec):
    samples = load_mvtec(mvtec / "cable")
    assert len(samples) == 6 and samples[0].key == "cable/train/good/000.png"


def test_unknown_category_lists_the_known_ones(mvtec):
    with pytest.raises(DatasetError, match="no MVTec AD category 'screw'.*bottle, cable"):
        load_mvtec(mvtec, category="screw")


def test_bad_split(mvtec):
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_mvtec(mvtec, split="val")


def test_no_categories_or_no_images(tmp_path):
    with pytest.raises(DatasetError, match="no MVTec AD categories"):
        load_mvtec(tmp_path)
    (tmp_path / "bottle" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        load_mvtec(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_mvtec(tmp_path / "nope")
