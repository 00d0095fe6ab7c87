"""``inspect review second-opinion``: both opinions written, one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.store import ReviewStore
from defectkit.cli import main
from defectkit.core.files import sha256_bytes
from defectkit.testing.opinions import fit_heavy, part_png


@pytest.fixture(scope="module")
def heavy_dir(tmp_path_factory):
    return fit_heavy(tmp_path_factory.mktemp("heavy") / "model")


def keep_disputed_part(store) -> None:
    """spot_003, which the line calls a scratch (the heavy model: a spot)."""
    image = part_png("spot_003")
    store.add(ReviewItem(
        sha256=sha256_bytes(image), created_at=1.0, station="line3", name="spot_003.png",
        bundle_id="line-b1", reason="near", policy="hold", verdict="hold",
        model_verdict="defect", label="scratch", score=0.5, threshold=0.5, image=image,
    ))  # fmt: skip
    store.close()


@pytest.fixture
def review_db(tmp_path):
    keep_disputed_part(ReviewStore(tmp_path / "review.db"))
    return tmp_path / "review.db"


def test_both_opinions_are_written_and_a_disagreement_exits_1(heavy_dir, review_db, tmp_path,
                                                              capsys):  # fmt: skip
    out = tmp_path / "opinions"
    argv = ["review", "second-opinion", "--model", str(heavy_dir), "--store", str(review_db),
            "-o", str(out)]  # fmt: skip
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "DISAGREE (class scratch vs spot)" in printed and "0 from the cache" in printed
    data = json.loads((out / "second_opinion.json").read_text())
    assert data["disagreements"] == 1 and data["items"][0]["heavy"]["label"] == "spot"
    assert "Disagree: class scratch vs spot" in (out / "index.html").read_text()
    assert main(argv) == 1 and "1 from the cache" in capsys.readouterr().out


def test_the_store_may_be_the_lines_postgresql(heavy_dir, pg_review_url, tmp_path, capsys):
    from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore

    keep_disputed_part(PostgresReviewStore(pg_review_url, station="line3"))
    argv = ["review", "second-opinion", "--model", str(heavy_dir), "--store", pg_review_url,
            "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 1
    assert "DISAGREE (class scratch vs spot)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "{tmp}/nowhere", "--store", "{db}"], "no such folder; fit one with"),
        (["--model", "{heavy}", "--daemon", "http://127.0.0.1:9"], "cannot reach the daemon"),
        (["--model", "{heavy}", "--store", "{tmp}/missing.db"], "no such review store"),
        (["--model", "{heavy}", "--store", "postgresql://qc:pw@127.0.0.1:9/x"], "cannot connect"),
        (["--model", "{heavy}", "--store", "{db}", "--token-file", "{tmp}/t"], "goes with --daemon"),
        (["--model", "{typeonly}", "--store", "{db}"], "type-only"),
    ],
    ids=["missing-model", "unreachable-daemon", "missing-store", "unreachable-postgresql", "token-without-daemon",
         "type-only-heavy"],
)  # fmt: skip
def test_errors_are_one_line_and_exit_2(extra, message, heavy_dir, review_db, tmp_path,
                                        tmp_path_factory, capsys):  # fmt: skip
    typeonly = tmp_path_factory.getbasetemp() / "typeonly-model"
    if "{typeonly}" in extra and not typeonly.exists():
        fit_heavy(typeonly, good=False)
    values = {"tmp": tmp_path, "db": review_db, "heavy": heavy_dir, "typeonly": typeonly}
    argv = ["review", "second-opinion", "-o", str(tmp_path / "out"),
            *(arg.format(**values) for arg in extra)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
