"""load_dataset: one entry point, dispatching on the format, with one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from defectkit.datasets import list_formats, load_dataset
from defectkit.errors import DatasetError


def test_formats_listed():
    assert list_formats() == ["folder", "mvtec", "visa", "textile"]


def test_unknown_format_names_the_known_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset format 'coco'.*folder, mvtec"):
        load_dataset(tmp_path, format="coco")


@pytest.mark.parametrize("fmt", ["folder", "mvtec", "visa", "textile"])
def test_missing_folder(tmp_path, fmt):
    with pytest.raises(DatasetError, match="no such dataset folder") as info:
        load_dataset(tmp_path / "nowhere", format=fmt)
    assert "\n" not in str(info.value)


def test_path_required_except_for_textile():
    with pytest.raises(DatasetError, match="needs the dataset folder"):
        load_dataset(None)


def test_options_the_format_lacks_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="no splits"):
        load_dataset(tmp_path, split="train")
    with pytest.raises(DatasetError, match="no categories"):
        load_dataset(None, format="textile", category="x")


def test_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="no images found; expected ROOT/good"):
        load_dataset(tmp_path)


def test_dispatches_to_the_folder_loader(tmp_path, image_file):
    image_file(tmp_path / "good" / "a.png")
    image_file(tmp_path / "dent" / "b.png")
    samples = load_dataset(str(tmp_path))
    assert [(s.label, s.key) for s in samples] == [("dent", "dent/b.png"), ("good", "good/a.png")]


def test_dispatches_to_mvtec_with_options(tmp_path, image_file):
    image_file(tmp_path / "bottle" / "train" / "good" / "000.png")
    image_file(tmp_path / "bottle" / "test" / "good" / "000.png")
    samples = load_dataset(tmp_path, format="mvtec", category="bottle", split="test")
    assert [s.key for s in samples] == ["bottle/test/good/000.png"]


def test_datasets_never_import_torch():
    code = (
        "import sys, defectkit.datasets as d\n"
        "d.make_synthetic(n_good=1, defects=['scratch'], size=32)\n"
        "d.load_dataset(None, format='textile')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
