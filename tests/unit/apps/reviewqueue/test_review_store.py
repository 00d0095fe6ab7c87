"""The bounded review store, in SQLite and in PostgreSQL: kept once, oldest evicted and
counted (across a reopen), read back whole. The PostgreSQL cases need the server
binaries (initdb, pg_ctl) and psycopg; they skip saying which is missing."""

import numpy as np
import pytest

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.store import ReviewLimits, ReviewStore, ReviewStoreError
from defectkit.testing.review import review_item as item


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path):
    """``open_store(limits=None)``: the daemon's review store of line-1, opened again
    (the same file or database) by every call, closed after the test."""
    opened = []

    if request.param == "sqlite":

        def make(limits=None):
            opened.append(ReviewStore(tmp_path / "review.db", limits))
            return opened[-1]
    else:
        from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore

        url = request.getfixturevalue("pg_review_url")

        def make(limits=None):
            opened.append(PostgresReviewStore(url, limits, station="line-1"))
            return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_the_oldest_parts_are_evicted_beyond_the_count_and_counted(open_store):
    store = open_store(ReviewLimits(max_items=3))
    results = [store.add(item(n)) for n in range(5)]
    assert [r.evicted for r in results] == [0, 0, 0, 1, 1]
    assert store.count() == 3 and store.evicted() == 2
    assert [i.name for i in store.list()] == ["4.png", "3.png", "2.png"]  # newest first
    store.close()
    again = open_store(ReviewLimits(max_items=3))
    assert again.evicted() == 2  # the count survives a restart
    again.add(item(5))
    assert again.evicted() == 3 and again.count() == 3


def test_the_byte_limit_evicts_oldest_but_keeps_the_newest_part(open_store):
    store = open_store(ReviewLimits(max_items=100, max_bytes=250))
    for n in range(3):
        store.add(item(n, size=100))
    assert store.count() == 2 and store.evicted() == 1
    assert store.add(item(9, size=1000)).evicted == 2  # alone over the limit: still kept
    assert [i.name for i in store.list()] == ["9.png"]


def test_the_same_part_is_kept_once(open_store):
    store = open_store()
    assert store.add(item(1)).added
    assert not store.add(item(1)).added
    assert store.count() == 1


def test_a_part_reads_back_with_image_mask_and_proposal(open_store):
    mask = np.zeros((8, 10), bool)
    mask[2:4, 3:7] = True
    store = open_store()
    store.add(item(7, mask=mask))
    store.add(item(8))
    listed = store.list()[1]
    assert listed.image is None and listed.to_json()["has_mask"]
    assert not store.list()[0].to_json()["has_mask"]
    got = store.get(listed.id)
    assert got.image == bytes([7]) * 100
    assert np.array_equal(got.mask(), mask)
    assert got.caption() == "part 7" and got.proposal["probabilities"] == {"good": 0.6}
    assert got.station == "line-1" and got.score == pytest.approx(0.49)
    assert ReviewItem.from_json(got.to_json()).sha256 == got.sha256
    assert store.fetch(listed).image == got.image
    assert store.get(10**9) is None


def test_pages_go_backwards_from_a_cursor(open_store):
    store = open_store()
    for n in range(5):
        store.add(item(n))
    first = store.list(limit=2)
    assert [i.name for i in first] == ["4.png", "3.png"]
    assert [i.name for i in store.list(limit=2, before_id=first[-1].id)] == ["2.png", "1.png"]


def test_readonly_open_of_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReviewStoreError, match="no such review store"):
        ReviewStore(tmp_path / "none.db", readonly=True)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ReviewStoreError, match="cannot open"):
        ReviewStore(tmp_path / "junk.db", readonly=True)
