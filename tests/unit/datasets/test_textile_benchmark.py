"""The packaged textile benchmark and Megahed et al. (2025)'s few-shot split."""

from __future__ import annotations

import sys

import pytest

from defectkit.datasets import load_dataset, load_textile, textile_protocol_split
from defectkit.errors import DatasetError


@pytest.fixture(scope="module")
def textile():
    return load_textile()


def test_counts_labels_and_image_size(textile):
    labels = [s.label for s in textile]
    assert (labels.count("good"), labels.count("local"), labels.count("global")) == (1000, 500, 500)
    assert labels == sorted(labels, key=["good", "local", "global"].index)
    assert len({s.key for s in textile}) == 2000  # file names repeat across folders, keys do not
    assert len({s.name for s in textile}) == 1000
    assert textile[0].key == "nominal/textile_0001.jpg"
    assert textile[0].name == "textile_0001.jpg"
    for sample in (textile[0], textile[1000], textile[1500]):
        image = sample.load_image()
        # 250 x 250 files; the 1-pixel white frame on the bottom/right edges is cropped.
        assert image.shape == (249, 249, 3)
        assert image[-1].mean() < 240 and image[:, -1].mean() < 240


def test_through_load_dataset():
    assert len(load_dataset(None, format="textile")) == 2000


@pytest.mark.parametrize("n", [1, 2, 5, 8, 16])
def test_protocol_sizes_and_disjointness(textile, n):
    train, test = textile_protocol_split(textile, n, seed=0)
    count = lambda part, label: sum(s.label == label for s in part)  # noqa: E731
    assert count(train, "good") == n
    assert count(train, "local") == (n + 1) // 2  # odd n: the extra shot is local
    assert count(train, "global") == n // 2
    assert (count(test, "good"), count(test, "local"), count(test, "global")) == (100, 50, 50)
    assert not {s.key for s in train} & {s.key for s in test}
    assert len({s.key for s in train}) == len(train) and len({s.key for s in test}) == 200


def test_protocol_is_reproducible_and_seeded(textile):
    a = textile_protocol_split(textile, 4, seed=7)
    b = textile_protocol_split(list(reversed(textile)), 4, seed=7)  # input order is irrelevant
    assert [s.key for s in a.train] == [s.key for s in b.train]
    assert [s.key for s in a.test] == [s.key for s in b.test]
    c = textile_protocol_split(textile, 4, seed=8)
    assert {s.key for s in a.train} != {s.key for s in c.train}


def test_test_set_fixed_across_n_and_training_sets_nested(textile):
    small = textile_protocol_split(textile, 3, seed=1)
    large = textile_protocol_split(textile, 10, seed=1)
    assert [s.key for s in small.test] == [s.key for s in large.test]
    assert {s.key for s in small.train} <= {s.key for s in large.train}


def test_protocol_needs_enough_images(textile):
    with pytest.raises(DatasetError, match="needs 150 'local' images"):
        textile_protocol_split(textile[:1100], 200, seed=0)
    with pytest.raises(DatasetError, match="n must be >= 0"):
        textile_protocol_split(textile, -1)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "conformal_clip_data", None)  # import now fails
    with pytest.raises(DatasetError, match="pip install conformal-clip-data"):
        load_textile()


def test_a_folder_with_the_same_layout(tmp_path, image_file):
    for group in ("nominal", "local", "global"):
        image_file(tmp_path / group / "textile_0001.jpg")
    samples = load_dataset(tmp_path, format="textile")
    assert [s.label for s in samples] == ["good", "local", "global"]
    (tmp_path / "global" / "textile_0001.jpg").unlink()
    (tmp_path / "global").rmdir()
    with pytest.raises(DatasetError, match="global: missing"):
        load_textile(tmp_path)
