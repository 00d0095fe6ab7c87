"""The uncertainty band: which parts are unsure, parsed from --band, kept in the manifest."""

import json

import pytest

from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import MANIFEST, read_manifest, set_thresholds
from defectkit.exporters.review_band import (
    ReviewBand,
    parse_band,
    review_band_of,
    set_review_band,
)
from defectkit.testing.bundles import write_minimal_bundle


def reason(band, score, verdict="defect", probabilities=None, threshold=0.5):
    return band.reason(
        score=score, threshold=threshold, verdict=verdict,
        probabilities=probabilities or {"good": 0.1, "scratch": 0.9},
    )  # fmt: skip


def test_scores_within_the_margin_of_the_threshold_are_uncertain():
    band = ReviewBand(score_margin=0.1)
    assert band.score_range(0.5) == pytest.approx((0.45, 0.55))
    assert reason(band, 0.46, verdict="good") is not None
    assert reason(band, 0.54) is not None
    assert reason(band, 0.44, verdict="good") is None
    assert reason(band, 0.55) is None  # [low, high)
    assert "within 10%" in reason(band, 0.5)


def test_a_low_class_probability_makes_a_defect_uncertain_but_not_a_good_part():
    band = ReviewBand(min_probability=0.6)
    unsure = {"good": 0.1, "scratch": 0.5, "dent": 0.4}
    assert "scratch at probability 0.50" in reason(band, 0.9, probabilities=unsure)
    assert reason(band, 0.1, verdict="good", probabilities={"good": 0.5, "scratch": 0.5}) is None
    assert reason(band, 0.9, verdict=None, probabilities=unsure) is not None  # type-only mode


def test_a_type_only_result_has_no_score_band():
    assert reason(ReviewBand(score_margin=0.5), 0.5, verdict=None) is None


@pytest.mark.parametrize(
    "text, expected",
    [("0.1", ReviewBand(0.1, 0.0)), ("0.1,0.6", ReviewBand(0.1, 0.6)), ("0", ReviewBand())],
)
def test_parse_band(text, expected):
    assert parse_band(text) == expected


@pytest.mark.parametrize("text", ["", "x", "0.1,0.2,0.3", "1.5", "-0.1", "0.1,2", "nan"])
def test_bad_bands_are_one_line_config_errors(text):
    with pytest.raises(ConfigError, match="band"):
        parse_band(text)


def _bundle(tmp_path):
    return write_minimal_bundle(tmp_path / "bundle")


def test_the_band_lives_in_the_manifest_and_survives_a_threshold_move(tmp_path):
    folder = _bundle(tmp_path)
    assert review_band_of(read_manifest(folder)) is None  # optional key, read with a default
    before = read_manifest(folder)["manifest_sha256"]
    set_review_band(folder, ReviewBand(0.2, 0.7))
    manifest = read_manifest(folder)  # re-hashed: still verifies
    assert manifest["manifest_sha256"] != before
    assert review_band_of(manifest) == ReviewBand(0.2, 0.7)
    set_thresholds(folder, image=1.0)
    band = review_band_of(read_manifest(folder))
    assert band.score_range(1.0) == pytest.approx((0.8, 1.2))  # a fraction: moves with it
    set_review_band(folder, ReviewBand())
    assert "review_band" not in read_manifest(folder)


def test_an_unreadable_band_is_a_bundle_error():
    with pytest.raises(BundleError, match="review_band"):
        review_band_of({"review_band": {"score_margin": "wide"}})
    with pytest.raises(BundleError, match="unknown keys"):
        review_band_of({"review_band": {"margin": 0.1}})


def test_cli_threshold_band_sets_and_prints_it(tmp_path, capsys):
    from defectkit.cli import main

    folder = _bundle(tmp_path)
    assert main(["threshold", str(folder), "--band", "0.1,0.6"]) == 0
    assert "scores within 10%" in capsys.readouterr().out
    assert json.loads((folder / MANIFEST).read_text())["review_band"] == {
        "score_margin": 0.1, "min_probability": 0.6,
    }  # fmt: skip
    assert main(["threshold", str(folder), "--band", "2"]) == 2
    assert "score margin" in capsys.readouterr().err
