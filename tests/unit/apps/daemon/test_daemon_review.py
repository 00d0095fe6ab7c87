"""Parts in the bundle's uncertainty band: marked review, answered by the site's policy,
kept in the bounded review store, listed by GET /v1/review, counted in /metrics."""

import json

import pytest
from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app
from defectkit.apps.daemon.jobs import HTTP, Job
from defectkit.testing.daemon import png_bytes, write_fake_bundle

# The double's score is the image's mean brightness and its threshold 0.5: gray 120
# scores 0.47, inside a +-10 % band (0.45..0.55); gray 20 and 230 are sure.
UNSURE, DARK, BRIGHT = 120, 20, 230


def banded(folder, band=None):
    write_fake_bundle(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["review_band"] = band or {"score_margin": 0.1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def run(service, *values):
    jobs = [Job(HTTP, f"{v}.png", png_bytes(v, tag=i)) for i, v in enumerate(values)]
    service.pipeline.run_batch(jobs)
    return [job.future.result(timeout=5) for job in jobs]


@pytest.mark.parametrize(
    "policy, verdict", [("hold", "hold"), ("reject", "defect"), ("accept", "good")]
)
def test_an_uncertain_part_is_answered_by_the_policy_and_marked(make_service, tmp_path, policy,
                                                                 verdict):
    service = make_service(start=False, bundle=banded(tmp_path / "b"), review_policy=policy)
    unsure, dark, bright = run(service, UNSURE, DARK, BRIGHT)
    assert unsure.status == 200 and unsure.body["verdict"] == verdict
    assert unsure.body["review"]["policy"] == policy
    assert unsure.body["review"]["model_verdict"] == "good"
    assert "within 10%" in unsure.body["review"]["reason"]
    assert (dark.body["verdict"], bright.body["verdict"]) == ("good", "defect")
    assert "review" not in dark.body and "review" not in bright.body
    row = service.store.get(unsure.body["id"])
    assert row["verdict"] == verdict  # the row says what the line was told
    assert service.metrics.reviews.value(policy=policy) == 1
    counted = service.metrics.inspections.value(source="http", verdict=verdict, label="good")
    assert counted == 1 + (verdict == "good")  # the dark part is good too
    assert service.review_store.count() == 1


def test_without_a_band_nothing_is_marked(make_service):
    service = make_service(start=False)
    (unsure,) = run(service, UNSURE)
    assert unsure.body["verdict"] == "good" and "review" not in unsure.body
    assert service.review_store.count() == 0


def test_the_review_store_is_bounded_and_evictions_are_counted(make_service, tmp_path):
    service = make_service(start=False, bundle=banded(tmp_path / "b"), review_keep=2)
    run(service, UNSURE, UNSURE + 1, UNSURE + 2)
    assert service.review_store.count() == 2
    assert service.metrics.review_evicted.value() == 1
    text = service.metrics.render()
    assert "defectkit_review_evicted_total 1" in text
    assert 'defectkit_review_total{policy="hold"} 3' in text
    assert "defectkit_review_queued 2" in text


def test_a_failing_review_store_does_not_stop_the_line(make_service, tmp_path):
    service = make_service(start=False, bundle=banded(tmp_path / "b"))
    service.review_store.close()
    (unsure,) = run(service, UNSURE)
    assert unsure.status == 200 and unsure.body["verdict"] == "hold"
    assert service.metrics.errors.value(kind="review_store") == 1


def test_get_v1_review_lists_parts_with_the_proposal_image_and_mask(make_service, tmp_path):
    service = make_service(bundle=banded(tmp_path / "b", {"min_probability": 1.0}))
    with TestClient(create_app(service)) as client:
        data = png_bytes(BRIGHT)
        answer = client.post("/v1/inspect?name=part7.png", content=data,
                             headers={"content-type": "image/png"}).json()  # fmt: skip
        assert answer["verdict"] == "hold" and "probability" in answer["review"]["reason"]
        listing = client.get("/v1/review").json()
        assert listing["queued"] == 1 and listing["evicted"] == 0 and listing["policy"] == "hold"
        (item,) = listing["items"]
        assert item["name"] == "part7.png" and item["model_verdict"] == "defect"
        assert item["proposal"]["label"] == "scratch" and item["proposal"]["caption"]
        assert client.get(f"/v1/review/{item['id']}/image").content == data
        assert item["has_mask"]
        assert client.get(f"/v1/review/{item['id']}/mask").headers["content-type"] == "image/png"
        assert client.get("/v1/review/999/image").status_code == 404
        assert client.get("/v1/results?verdict=hold").json()["results"][0]["name"] == "part7.png"


def test_review_flags_are_validated(make_service):
    from defectkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--review-policy"):
        make_service(start=False, review_policy="maybe")
    with pytest.raises(ConfigError, match="--review-keep"):
        make_service(start=False, review_keep=0)


def test_a_postgresql_review_store_keeps_this_lines_parts(make_service, tmp_path, pg_review_url):
    service = make_service(start=False, bundle=banded(tmp_path / "b"), station="line-7",
                           review_store=pg_review_url, review_keep=2)  # fmt: skip
    run(service, UNSURE, UNSURE + 1, UNSURE + 2)
    assert service.review_store.count() == 2 and service.review_store.evicted() == 1
    assert service.metrics.review_evicted.value() == 1
    assert {i.station for i in service.review_store.list()} == {"line-7"}
    assert "defectkit_review_queued 2" in service.metrics.render()
    import psycopg

    with psycopg.connect(pg_review_url) as conn:  # in the server, not in a file named like it
        rows = conn.execute("SELECT station, COUNT(*) FROM review_items GROUP BY 1").fetchall()
        evicted = conn.execute("SELECT station, evicted FROM review_evictions").fetchall()
    assert rows == [("line-7", 2)] and evicted == [("line-7", 1)]


def test_a_postgresql_review_store_that_is_down_does_not_stop_the_line(make_service, tmp_path):
    pytest.importorskip("psycopg", reason="psycopg 3 not installed: pip install 'psycopg[binary]'")
    service = make_service(start=False, bundle=banded(tmp_path / "b"),
                           review_store="postgresql://postgres@127.0.0.1:9/lines")  # fmt: skip
    assert service.metrics.errors.value(kind="review_store") == 1  # said once at start-up
    (unsure,) = run(service, UNSURE)
    assert unsure.status == 200 and unsure.body["verdict"] == "hold"
    assert service.store.get(unsure.body["id"])["verdict"] == "hold"  # the row is there
    assert service.metrics.errors.value(kind="review_store") == 2
    assert "defectkit_review_queued nan" in service.metrics.render()  # cannot say


def test_a_review_store_url_that_is_not_postgresql_is_refused(make_service):
    from defectkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--review-store mysql://h/db: only SQLite paths"):
        make_service(start=False, review_store="mysql://h/db")
