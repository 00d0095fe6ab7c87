"""The review queue's logic: least certain first, the model's proposal, confirm joins the project."""

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from defectkit.apps.labelling import escalated
from defectkit.apps.labelling.records import ProjectError
from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask
from defectkit.apps.reviewqueue.sources import DaemonReviewSource, open_source, open_sources
from defectkit.apps.reviewqueue.store import ReviewStore, ReviewStoreError
from defectkit.core.files import sha256_bytes
from defectkit.testing.daemon import png_bytes


def item(n, *, score, model_verdict="defect", label="scratch", mask=None):
    image = png_bytes(100 + n, tag=n)
    return ReviewItem(
        sha256=sha256_bytes(image), created_at=100.0 + n, station="line3", name=f"p{n}.png",
        bundle_id="b1", reason="near", policy="hold", verdict="hold",
        model_verdict=model_verdict, label=label, score=score, threshold=0.5,
        proposal={"caption": f"a scratch on part {n}"}, image=image,
        mask_png=encode_mask(mask),
    )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    return ReviewStore(tmp_path / "review.db")


def test_the_queue_is_least_certain_first_and_skips_parts_already_added(project, store,
                                                                          tmp_path):  # fmt: skip
    for n, score in enumerate([0.58, 0.51, 0.45]):
        store.add(item(n, score=score))
    source = open_source(str(tmp_path / "review.db"))
    assert [i.name for i in escalated.queue(source, project)] == ["p1.png", "p2.png", "p0.png"]
    project.add_image(png_bytes(101, tag=1), "p1.png")  # the same bytes: reviewed before
    assert [i.name for i in escalated.queue(source, project)] == ["p2.png", "p0.png"]


def test_the_proposal_maps_the_model_class_onto_the_project(project):
    project.add_class("scratch")
    assert escalated.proposal(item(0, score=0.6), project).label == "scratch"
    assert escalated.proposal(item(0, score=0.6, label="dent"), project).label == ""
    assert escalated.proposal(item(0, score=0.6, label="anomaly"), project).label == ""
    good = escalated.proposal(item(0, score=0.4, model_verdict="good", label="good"), project)
    assert good.label == "good" and good.caption == "a scratch on part 0"


def test_confirm_adds_the_part_with_label_mask_and_caption(project):
    project.add_class("scratch")
    mask = np.zeros((32, 32), bool)
    mask[4:9, 5:20] = True
    record = escalated.confirm(project, item(3, score=0.55, mask=mask), label="scratch")
    assert record.label == "scratch" and record.note == "a scratch on part 3"
    assert np.array_equal(project.load_mask(record.id), mask)
    corrected = escalated.confirm(project, item(4, score=0.52, mask=mask), label="good",
                                  note="dust, not a scratch")  # fmt: skip
    assert corrected.label == "good" and corrected.mask is None
    assert corrected.note == "dust, not a scratch"
    assert len(project.labelled()) == 2


def test_confirm_refuses_without_a_usable_class(project):
    with pytest.raises(ProjectError, match="choose the part's class"):
        escalated.confirm(project, item(0, score=0.5), label="")
    with pytest.raises(ProjectError, match="no class 'dent'"):
        escalated.confirm(project, item(0, score=0.5), label="dent")
    assert project.images == []


def test_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(ReviewStoreError, match="daemon URL"):
        open_source("  ")
    with pytest.raises(ReviewStoreError, match="cannot connect"):
        open_source("postgresql://u@127.0.0.1:9/db")
    with pytest.raises(ReviewStoreError, match="no such review store"):
        open_source(str(tmp_path / "missing.db"))
    with pytest.raises(ReviewStoreError, match="cannot reach the daemon"):
        DaemonReviewSource("http://127.0.0.1:9").list()


def test_two_daemons_in_one_postgresql_and_a_review_db_merge_least_certain_first(
    project, store, tmp_path, pg_review_url
):
    from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore

    line1 = PostgresReviewStore(pg_review_url, station="line1")
    line2 = PostgresReviewStore(pg_review_url, station="line2")
    line1.add(item(0, score=0.60))
    line1.add(item(1, score=0.52))
    line2.add(item(1, score=0.53))  # the same part on another line: that line's own
    line2.add(item(2, score=0.49))
    store.add(item(3, score=0.505))  # line3's own review.db
    source = open_sources(f"{pg_review_url}\n\n# line 3, copied\n{tmp_path / 'review.db'}")
    queued = escalated.queue(source, project)
    assert [(i.station, i.name) for i in queued] == [
        ("line3", "p3.png"), ("line2", "p2.png"), ("line1", "p1.png"), ("line2", "p1.png"),
        ("line1", "p0.png"),
    ]  # fmt: skip
    assert {i.source for i in queued} == {pg_review_url, str(tmp_path / "review.db")}
    fetched = [source.fetch(ReviewItem.from_json(i.to_json())) for i in queued]
    assert [f.image for f in fetched] == [item(n, score=0).image for n in (3, 2, 1, 1, 0)]
    assert fetched[0].source == str(tmp_path / "review.db")
    for s in (line1, line2):
        s.close()


def test_a_store_that_cannot_be_read_is_named_and_the_others_still_listed(store, tmp_path):
    store.add(item(0, score=0.5))
    missing = tmp_path / "line4" / "review.db"
    source = open_sources(f"{tmp_path / 'review.db'}\n{missing}")
    assert [i.name for i in source.list()] == ["p0.png"]
    assert len(source.problems) == 1 and str(missing) in source.problems[0]
    with pytest.raises(ReviewStoreError, match="no such review store"):
        open_sources(f"{missing}\n{missing}.2")  # nothing at all to read: say why
    with pytest.raises(ReviewStoreError, match="only a daemon URL takes a token"):
        open_sources(f"{tmp_path / 'review.db'} s3cret")
    with pytest.raises(ReviewStoreError, match="daemon URL"):
        open_sources(" \n# nothing\n")
    with pytest.raises(ReviewStoreError, match="not one of the review stores"):
        source.fetch(item(9, score=0.5))


def test_a_daemon_url_source_sends_the_token_and_fetches_image_and_mask():
    stored = item(7, score=0.5, mask=np.ones((32, 32), bool))
    stored.id = 7
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append((self.path, self.headers.get("Authorization")))
            body = {"/v1/review?limit=200": json.dumps({"items": [stored.to_json()]}).encode(),
                    "/v1/review/7/image": stored.image, "/v1/review/7/mask": stored.mask_png}  # fmt: skip
            data = body.get(self.path)
            self.send_response(200 if data else 404)
            self.end_headers()
            self.wfile.write(data or b'{"error": "no"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_port}/", "s3cret-token")
        (listed,) = source.list(limit=200)
        full = source.fetch(listed)
        assert full.image == stored.image and full.mask().all()
        assert {auth for _, auth in seen} == {"Bearer s3cret-token"}
    finally:
        server.shutdown()


def _scratch(n, *, size=40, model_verdict="defect", label="scratch"):
    """A part whose model proposed the band rows 10..15, columns 5..30."""
    mask = np.zeros((size, size), bool)
    mask[10:15, 5:30] = True
    part = item(n, score=0.55, model_verdict=model_verdict, label=label, mask=mask)
    image = png_bytes(90 + n, size=size, tag=n)
    return replace(part, image=image, sha256=sha256_bytes(image)), mask


def test_the_brush_shows_the_proposed_region_and_stores_the_correction(project):
    """Strokes painted (one taken back with the eraser) over the part in the queue's
    brush: the project keeps the model's region plus the strokes left, at the part's own
    pixels; with the region dropped, only the strokes."""
    project.add_class("scratch")
    part, proposed = _scratch(5)
    value = escalated.paint_start(part)
    shown = value["background"]
    plain = escalated.part_image(part)
    assert value["layers"] == []  # an empty layer for the strokes
    assert (shown != plain).any(axis=-1)[proposed].all()  # the region is tinted in...
    assert not (shown != plain).any(axis=-1)[~proposed].any()  # ...and nothing else
    layer = np.zeros((40, 40, 4), np.uint8)
    layer[30:34, 2:12] = (255, 48, 48, 255)  # a stroke where the model saw nothing
    layer[20:24, 30:38] = (255, 48, 48, 255)  # a second one...
    layer[20:24, 30:38] = 0  # ...taken back with the eraser
    edited = {**value, "layers": [layer]}
    record = escalated.confirm(
        project, part, label="scratch", mask=escalated.corrected_mask(part, edited)
    )
    expected = proposed.copy()
    expected[30:34, 2:12] = True
    assert np.array_equal(project.load_mask(record.id), expected)

    other, _ = _scratch(9)
    dropped = escalated.corrected_mask(other, {**value, "layers": [layer]}, keep_proposal=False)
    record = escalated.confirm(project, other, label="scratch", mask=dropped)
    assert np.array_equal(project.load_mask(record.id), layer[..., 3] > 0)


def test_no_proposed_region_opens_an_empty_layer_and_a_good_part_keeps_no_mask(project):
    project.add_class("scratch")
    called_good, _ = _scratch(6, model_verdict="good", label="good")
    value = escalated.paint_start(called_good)
    assert escalated.proposed_mask(called_good) is None  # its mask was no defect region
    assert value["layers"] == []
    assert np.array_equal(value["background"], escalated.part_image(called_good))
    painted = np.zeros((40, 40, 4), np.uint8)
    painted[5:9, 5:25] = (255, 48, 48, 255)  # the engineer paints what the model missed
    mask = escalated.corrected_mask(called_good, {**value, "layers": [painted]})
    record = escalated.confirm(project, called_good, label="scratch", mask=mask)
    assert np.array_equal(project.load_mask(record.id), painted[..., 3] > 0)

    dust, _ = _scratch(7)  # the model's region is dust: the engineer says good
    value = escalated.paint_start(dust)
    mask = escalated.corrected_mask(dust, value)
    assert mask is not None  # the untouched proposal is still kept...
    good = escalated.confirm(project, dust, label="good", mask=mask)
    assert good.label == "good" and good.mask is None  # ...but a good part has none
    assert project.load_mask(good.id) is None


def test_an_unreadable_part_or_an_emptied_brush_says_why_and_adds_nothing(project):
    project.add_class("scratch")
    part, proposed = _scratch(8)
    broken = replace(part, image=b"not an image at all")
    with pytest.raises(ProjectError, match="p8.png from line3 cannot be read"):
        escalated.paint_start(broken)
    with pytest.raises(ProjectError, match="cannot be read"):
        escalated.corrected_mask(broken, None)  # its brush showed nothing
    with pytest.raises(ProjectError, match="cannot be read"):
        escalated.confirm(project, broken, label="scratch", mask=None)
    emptied = {"background": None, "layers": [], "composite": None}  # the trash icon
    with pytest.raises(ProjectError, match="emptied"):
        escalated.corrected_mask(part, emptied)
    with pytest.raises(ProjectError, match="select the part again"):
        escalated.confirm(project, part, label="scratch", mask=proposed[:20])
    assert project.images == []
