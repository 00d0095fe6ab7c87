"""The review tab's second opinion: the heavy model's view beside the line's, disputes first."""

from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")

from defectkit.apps.labelling import second_look  # noqa: E402
from defectkit.apps.labelling.tabs.review import ReviewQueueTab  # noqa: E402
from defectkit.apps.reviewqueue.items import ReviewItem  # noqa: E402
from defectkit.apps.reviewqueue.second_opinion import SecondOpinionError  # noqa: E402
from defectkit.apps.reviewqueue.store import ReviewStore  # noqa: E402
from defectkit.core.files import sha256_bytes  # noqa: E402
from defectkit.core.images import read_image  # noqa: E402
from defectkit.testing.opinions import fit_heavy, part_png  # noqa: E402


@pytest.fixture(scope="module")
def heavy_dir(tmp_path_factory):
    return fit_heavy(tmp_path_factory.mktemp("heavy") / "model")


def queued(key, *, label, verdict, score, n):
    image = part_png(key)
    return ReviewItem(
        sha256=sha256_bytes(image), created_at=float(n), station="line3", name=f"{key}.png",
        bundle_id="line-b1", reason="near", policy="hold", verdict="hold",
        model_verdict=verdict, label=label, score=score, threshold=0.5, image=image,
        proposal={"probabilities": {label: 0.6}, "caption": "line caption"},
    )  # fmt: skip


@pytest.fixture
def review_db(tmp_path, heavy_dir):
    """good_004, nearest the threshold, where the line says what the heavy model says;
    spot_003, further from it, which the line calls a scratch."""
    heavy = second_look.heavy_model(str(heavy_dir))
    said = heavy.inspect(read_image(part_png("good_004")))
    store = ReviewStore(tmp_path / "review.db")
    store.add(queued("good_004", label=said.label, verdict=said.verdict, score=0.5, n=1))
    store.add(queued("spot_003", label="scratch", verdict="defect", score=0.6, n=2))
    store.close()
    return str(tmp_path / "review.db")


def test_the_heavy_model_is_loaded_once_and_a_wrong_path_is_named(heavy_dir, tmp_path):
    assert second_look.heavy_model(str(heavy_dir)) is second_look.heavy_model(f" {heavy_dir} ")
    assert second_look.heavy_model("") is None
    with pytest.raises(SecondOpinionError, match="no such folder"):
        second_look.heavy_model(str(tmp_path / "nowhere"))


def test_the_tab_puts_disputed_parts_first_and_shows_both_opinions(project, review_db,
                                                                   heavy_dir):  # fmt: skip
    project.add_class("scratch")
    project.add_class("spot")
    with gr.Blocks():
        tab = ReviewQueueTab(shell=None)
        tab.build()
    plain = tab.load(project, review_db, None)
    assert [i["name"] for i in plain[tab.items]] == ["good_004.png", "spot_003.png"]

    out = tab.load(project, review_db, None, str(heavy_dir))
    assert [i["name"] for i in out[tab.items]] == ["spot_003.png", "good_004.png"]
    assert "the heavy model disagrees on 1 (first, ⚠)" in out[tab.summary_md]
    assert out[tab.gallery][0][1].startswith("⚠ scratch")
    assert not out[tab.gallery][1][1].startswith("⚠")

    item = ReviewStore(review_db, readonly=True).fetch(ReviewItem.from_json(out[tab.items][0]))
    shown = tab.detail(project, item, str(heavy_dir))
    assert "The models disagree: class scratch vs spot" in shown[tab.opinion_md]
    assert "Heavy model" in shown[tab.opinion_md] and "p 0.60" in shown[tab.opinion_md]
    assert shown[tab.heavy_picture]["visible"] is True
    assert shown[tab.label_radio]["value"] == "scratch"  # the line's proposal stays pre-filled
    assert (project.root / second_look.CACHE_FILE).is_file()


def test_the_heavy_model_is_remembered_in_the_project(project, review_db, heavy_dir):
    from defectkit.apps.labelling.project import Project

    with gr.Blocks():
        tab = ReviewQueueTab(shell=None)
        tab.build()
    assert tab.show(project)[tab.heavy_box] == ""
    tab.load(project, review_db, None, f" {heavy_dir} ")
    assert tab.show(Project.open(project.root))[tab.heavy_box] == str(heavy_dir)  # a restart
    with pytest.raises(SecondOpinionError):
        tab.load(project, review_db, None, str(heavy_dir / "nowhere"))
    assert Project.open(project.root).setting("review_heavy_model") == str(heavy_dir)
