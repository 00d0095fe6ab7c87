"""The bounded review store: kept once, oldest evicted and counted, read back whole."""

import numpy as np
import pytest

from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask
from defectkit.apps.reviewqueue.store import ReviewLimits, ReviewStore, ReviewStoreError


def item(n: int, size: int = 100, mask=None) -> ReviewItem:
    return ReviewItem(
        sha256=f"{n:064x}", created_at=1000.0 + n, station="line-1", name=f"{n}.png",
        bundle_id="abc", reason="score near", policy="hold", verdict="hold",
        model_verdict="good", label="good", score=0.49, threshold=0.5,
        proposal={"caption": f"part {n}", "probabilities": {"good": 0.6}},
        image=bytes([n % 256]) * size, mask_png=encode_mask(mask),
    )  # fmt: skip


def test_the_oldest_parts_are_evicted_beyond_the_count_and_counted(tmp_path):
    store = ReviewStore(tmp_path / "review.db", ReviewLimits(max_items=3))
    results = [store.add(item(n)) for n in range(5)]
    assert [r.evicted for r in results] == [0, 0, 0, 1, 1]
    assert store.count() == 3 and store.evicted() == 2
    assert [i.name for i in store.list()] == ["4.png", "3.png", "2.png"]  # newest first
    store.close()
    again = ReviewStore(tmp_path / "review.db", ReviewLimits(max_items=3))
    assert again.evicted() == 2  # the count survives a restart


def test_the_byte_limit_evicts_oldest_but_keeps_the_newest_part(tmp_path):
    store = ReviewStore(tmp_path / "review.db", ReviewLimits(max_items=100, max_bytes=250))
    for n in range(3):
        store.add(item(n, size=100))
    assert store.count() == 2 and store.evicted() == 1
    assert store.add(item(9, size=1000)).evicted == 2  # alone over the limit: still kept
    assert [i.name for i in store.list()] == ["9.png"]


def test_the_same_part_is_kept_once(tmp_path):
    store = ReviewStore(tmp_path / "review.db")
    assert store.add(item(1)).added
    assert not store.add(item(1)).added
    assert store.count() == 1


def test_a_part_reads_back_with_image_mask_and_proposal(tmp_path):
    mask = np.zeros((8, 10), bool)
    mask[2:4, 3:7] = True
    store = ReviewStore(tmp_path / "review.db")
    store.add(item(7, mask=mask))
    listed = store.list()[0]
    assert listed.image is None and listed.to_json()["has_mask"]
    got = store.get(listed.id)
    assert got.image == bytes([7]) * 100
    assert np.array_equal(got.mask(), mask)
    assert got.caption() == "part 7"
    assert ReviewItem.from_json(got.to_json()).sha256 == got.sha256


def test_readonly_open_of_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReviewStoreError, match="no such review store"):
        ReviewStore(tmp_path / "none.db", readonly=True)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ReviewStoreError, match="cannot open"):
        ReviewStore(tmp_path / "junk.db", readonly=True)
