"""What only the PostgreSQL review store does: several lines in one database, each
bounded and counted on its own; a reader sees them all; a server that is down or drops
the connection costs the line a counted error, never a wait or a crash."""

import time

import pytest

from defectkit.apps.reviewqueue import pgstore
from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore, redact
from defectkit.apps.reviewqueue.sources import open_source
from defectkit.apps.reviewqueue.store import ReviewLimits, ReviewStoreError
from defectkit.testing.review import review_item

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 not installed: pip install 'psycopg[binary]'"
)

#: A port nothing listens on (the discard port): connections are refused at once.
NOWHERE = "postgresql://postgres@127.0.0.1:9/postgres"


def on(station, n):
    return review_item(n, station=station)


def test_two_lines_share_one_database_each_bounded_and_counted_apart(pg_review_url):
    line1 = PostgresReviewStore(pg_review_url, ReviewLimits(max_items=2), station="line-1")
    line2 = PostgresReviewStore(pg_review_url, ReviewLimits(max_items=5), station="line-2")
    for n in range(4):
        line1.add(on("line-1", n))
    for n in range(3):  # the same parts seen by another line are that line's own
        line2.add(on("line-2", n))
    assert (line1.count(), line1.evicted()) == (2, 2)
    assert (line2.count(), line2.evicted()) == (3, 0)  # line-1's burst evicted none of these
    assert {i.station for i in line1.list()} == {"line-1"}
    other = line2.list()[0].id
    assert line1.get(other) is None  # a daemon's /v1/review serves its own parts only
    reader = open_source(pg_review_url)
    assert sorted((i.station, i.name) for i in reader.list()) == [
        ("line-1", "2.png"), ("line-1", "3.png"),
        ("line-2", "0.png"), ("line-2", "1.png"), ("line-2", "2.png"),
    ]  # fmt: skip
    assert reader.evicted() == 2 and reader.fetch(reader.list()[-1]).image is not None
    with pytest.raises(ReviewStoreError, match="reading only"):
        reader.add(on("line-1", 9))
    for store in (line1, line2, reader):
        store.close()


def test_a_dropped_connection_is_reopened_once(pg_review_url):
    store = PostgresReviewStore(pg_review_url, station="line-1")
    store.add(on("line-1", 1))
    with psycopg.connect(pg_review_url, autocommit=True) as admin:  # a server restart, for us
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )
    assert store.add(on("line-1", 2)).added and store.count() == 2
    store.close()


def test_a_server_that_is_down_fails_fast_and_is_retried_later(monkeypatch, pg_review_url):
    store = PostgresReviewStore(NOWHERE, station="line-1")  # a daemon still starts
    assert "cannot connect" in store.problem
    attempts = []
    monkeypatch.setattr(psycopg, "connect", lambda *a, **kw: attempts.append(a) or 1 / 0)
    started = time.monotonic()
    with pytest.raises(ReviewStoreError, match="retrying"):
        store.add(on("line-1", 1))
    assert not attempts and time.monotonic() - started < 1  # within RETRY_S: no new attempt
    monkeypatch.undo()
    store.url, store._retry_at = pg_review_url, 0.0  # the server is back, RETRY_S later
    assert store.add(on("line-1", 1)).added and store.problem is None
    store.close()


@pytest.mark.parametrize(
    "where, message",
    [
        (NOWHERE, "cannot connect"),
        ("postgresql://postgres@127.0.0.1:9/x?sslmode=bogus", "invalid sslmode"),
    ],
    ids=["unreachable", "malformed"],
)
def test_a_bad_url_is_a_one_line_error(where, message):
    with pytest.raises(ReviewStoreError, match=message) as caught:
        open_source(where)
    assert "\n" not in str(caught.value)


def test_a_database_no_daemon_wrote_to_is_a_clear_error(pg_review_url):
    with pytest.raises(ReviewStoreError, match="no review parts in this database yet"):
        open_source(pg_review_url)


def test_passwords_never_appear_in_names_or_messages():
    assert redact("postgresql://qc:s3cret@db:5432/lines") == "postgresql://qc:***@db:5432/lines"
    with pytest.raises(ReviewStoreError) as caught:
        open_source("postgresql://qc:s3cret@127.0.0.1:9/lines")
    assert "s3cret" not in str(caught.value)
    assert pgstore.RETRY_S >= 1  # a down server is asked at most every few seconds
