"""Second opinion: a heavier model re-inspects queued parts once, both opinions side by side."""

from __future__ import annotations

import json

import pytest

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.opinion_cache import OpinionCache
from defectkit.apps.reviewqueue.opinion_report import REPORT_JSON, write_report
from defectkit.apps.reviewqueue.second_opinion import (
    SecondOpinionError,
    load_heavy_model,
    second_opinion,
    second_opinions,
)
from defectkit.apps.reviewqueue.store import ReviewStore
from defectkit.core.files import sha256_bytes
from defectkit.testing.opinions import fit_heavy, part_png


@pytest.fixture(scope="module")
def heavy_dir(tmp_path_factory):
    return fit_heavy(tmp_path_factory.mktemp("heavy") / "model")


@pytest.fixture(scope="module")
def type_only_dir(tmp_path_factory):
    return fit_heavy(tmp_path_factory.mktemp("typeonly") / "model", good=False)


def line_item(key, *, verdict, label, score=0.5, n=0):
    image = part_png(key)
    return ReviewItem(
        sha256=sha256_bytes(image), created_at=100.0 + n, station="line3", name=f"{key}.png",
        bundle_id="line-b1", reason="near the threshold", policy="hold", verdict="hold",
        model_verdict=verdict, label=label, score=score, threshold=0.5,
        proposal={"probabilities": {label: 0.55}, "caption": "line caption"}, image=image,
    )  # fmt: skip


class Counting:
    """The heavy model's inspector, counting calls (the cache must spare the second run)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def inspect(self, images, paths=None):
        self.calls += len(images)
        return self.model.inspect(images, paths)


def test_disagreements_come_first_and_each_part_is_inspected_once(heavy_dir, tmp_path):
    heavy = load_heavy_model(heavy_dir)
    heavy.model = counting = Counting(heavy.model)
    # The line agrees with the heavy model on good_004 (whatever the heavy model says) and
    # calls the spot a scratch.
    agreed = second_opinion(line_item("good_004", verdict="good", label="good"), heavy)
    counting.calls = 0
    store = ReviewStore(tmp_path / "review.db")
    store.add(line_item("spot_003", verdict="defect", label="scratch", score=0.51, n=1))
    store.add(line_item("good_004", verdict=agreed.heavy.verdict, label=agreed.heavy.label,
                        score=0.49, n=2))  # fmt: skip
    cache = OpinionCache(tmp_path / "opinions.db")

    pairs = second_opinions(store, heavy, cache)
    assert [p.item.name for p in pairs] == ["spot_003.png", "good_004.png"]
    spot, good = pairs
    assert spot.heavy.verdict == "defect" and spot.heavy.label == "spot"
    assert spot.disagreement == "class scratch vs spot"
    assert spot.heavy.probability is not None and spot.heavy.mask_png is not None
    assert not good.disagrees and counting.calls == 2

    again = second_opinions(store, heavy, OpinionCache(tmp_path / "opinions.db"))
    assert counting.calls == 2 and all(p.cached for p in again)
    assert [p.heavy for p in again] == [p.heavy for p in pairs]


def test_a_refitted_heavy_model_is_asked_again(heavy_dir, tmp_path):
    cache = OpinionCache(tmp_path / "opinions.db")
    heavy = load_heavy_model(heavy_dir)
    item = line_item("spot_003", verdict="defect", label="scratch")
    first = second_opinion(item, heavy, cache)
    heavy.id = "another-fit"
    assert not second_opinion(item, heavy, cache).cached and first.heavy.model != "another-fit"


def test_the_report_has_both_opinions_and_says_where_they_disagree(heavy_dir, tmp_path):
    heavy = load_heavy_model(heavy_dir)
    pair = second_opinion(line_item("spot_003", verdict="defect", label="scratch"), heavy)
    page = write_report([pair], tmp_path / "out", heavy_path=str(heavy_dir))
    data = json.loads((tmp_path / "out" / REPORT_JSON).read_text())
    assert data["disagreements"] == 1
    (row,) = data["items"]
    assert row["line"]["label"] == "scratch" and row["heavy"]["label"] == "spot"
    assert row["line"]["probability"] == 0.55 and row["heavy"]["has_mask"]
    text = page.read_text()
    assert "Disagree: class scratch vs spot" in text
    assert (tmp_path / "out" / "0000-line.png").is_file()
    assert (tmp_path / "out" / "0000-heavy.png").is_file()


def test_a_type_only_heavy_model_cannot_second_a_verdict(type_only_dir):
    heavy = load_heavy_model(type_only_dir)
    assert not heavy.has_verdict
    with pytest.raises(SecondOpinionError, match="type-only .* fit it with good shots"):
        second_opinion(line_item("spot_003", verdict="defect", label="scratch"), heavy)
    sorted_only = second_opinion(line_item("spot_003", verdict=None, label="scratch"), heavy)
    assert sorted_only.heavy.verdict is None and sorted_only.heavy.label == "spot"


def test_a_missing_or_foreign_heavy_model_is_named(tmp_path):
    with pytest.raises(SecondOpinionError, match="no such folder; fit one with `inspect fit"):
        load_heavy_model(tmp_path / "nowhere")
    (tmp_path / "notes").mkdir()
    with pytest.raises(SecondOpinionError, match="not a model folder"):
        load_heavy_model(tmp_path / "notes")
