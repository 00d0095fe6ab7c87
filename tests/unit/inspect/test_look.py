"""The overall look beside the patch map: a whole surface changed a little, where every
patch still lies near some good patch, is seen once a fit has enough good images."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from defectkit.core.head import (
    AnomalyScoring,
    Head,
    Look,
    describe_image,
    overall_look,
    region_weights,
)
from defectkit.datasets import make_synthetic
from defectkit.inspect.calibrate import LOOK_MIN_GOOD, Shot, build_class_head
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector


def test_a_look_scores_each_good_image_left_out_and_round_trips():
    looks = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    look = Look.fit(looks)
    left_out = look.left_out()
    # Nearest other: 1, 1, 3 -> the reference is 3, the most unusual good image scores 1.0.
    assert look.ref == pytest.approx(3.0)
    assert left_out == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert look.score(np.array([0.5, 0.0])) == pytest.approx(0.5 / 3)
    assert look.score(np.array([6.0, 0.0])) == pytest.approx(5.0 / 3)
    again = Look.from_dict(json.loads(json.dumps(look.to_dict())))
    assert again == look and again != Look.fit(looks * 2)
    scoring = AnomalyScoring(look=look)
    assert AnomalyScoring.from_dict(json.loads(json.dumps(scoring.to_dict()))) == scoring
    old = {k: v for k, v in scoring.to_dict().items() if k != "look"}
    assert AnomalyScoring.from_dict(old).look is None  # a model saved before: scored as it was


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"looks": [[0.0, 1.0]], "ref": 1.0}, "two or more"),
        ({"looks": [[0.0, 1.0], [float("nan"), 0.0]], "ref": 1.0}, "finite"),
        ({"looks": [[0.0, 1.0], [1.0, 0.0]], "ref": 0.0}, "positive"),
    ],
)
def test_a_stored_look_is_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        Look.from_dict(bad)
    with pytest.raises(ValueError, match="at least two"):
        Look.fit(np.zeros((1, 4)))


def test_the_score_is_the_larger_of_the_map_and_the_look():
    rng = np.random.default_rng(0)
    goods = [rng.normal(size=(3, 6, 6)) for _ in range(4)]
    uniform = region_weights(None, (6, 6), 1.0)
    look = Look.fit(np.stack([overall_look(describe_image(g, uniform)) for g in goods]))
    flat_map = np.full((6, 6), 0.5, np.float32)  # no patch unusual: the map scores 0.5
    scoring = AnomalyScoring(sigma=0, pixel_ref=1.0, image_ref=1.0, look=look)
    classes = build_class_head([Shot("good", g) for g in goods[:2]], ["good"], None, InspectorConfig())
    head = Head(classes=classes, scoring=scoring)
    without = Head(classes=classes, scoring=replace(scoring, look=None))
    like_a_good = goods[0] + 0.01 * rng.normal(size=goods[0].shape)
    faded = goods[0] * 0.3  # every value nearer the mean: the spread of every feature falls
    for features, look_wins in ((like_a_good, False), (faded, True)):
        raw, _ = head.outputs(features=features, distance=flat_map)
        raw0, _ = without.outputs(features=features, distance=flat_map)
        assert float(raw0.score) == pytest.approx(0.5)
        expected = look.score(overall_look(describe_image(features, uniform)))
        assert float(raw.score) == pytest.approx(max(0.5, expected), rel=1e-5)
        assert (expected > 0.5) == look_wins


#: Good fabric shots of the fixture: more than the look needs (with five the map alone
#: already catches these faded weaves; with ten it misses them and the look does not).
GOOD_SHOTS = 10


@pytest.fixture(scope="module")
def weave():
    """Ten good fabric shots (and two scratches) fitted; six good images held out."""
    samples = make_synthetic(n_good=16, defects={"scratch": 2}, size=(96, 96), seed=3, texture="fabric")
    goods = [s for s in samples if s.label == "good"]
    assert GOOD_SHOTS >= LOOK_MIN_GOOD
    shots = goods[:GOOD_SHOTS] + [s for s in samples if s.label != "good"]
    inspector = Inspector(InspectorConfig(bank_size=512, seed=0))
    report = inspector.fit(shots)
    return inspector, report, [g.load_image() for g in goods[GOOD_SHOTS:]], shots


def _faded(image: np.ndarray) -> np.ndarray:
    """A washed-out weave: every pixel 40 % nearer the image's mean."""
    mean = image.mean()
    return np.clip((image.astype(np.float64) - mean) * 0.6 + mean, 0, 255).astype(np.uint8)


def test_with_ten_good_shots_a_faded_weave_the_map_misses_is_a_defect(weave):
    inspector, report, held, _ = weave
    assert report.evidence.endswith("+look")
    look = inspector.model.head.scoring.look
    assert look is not None and look.looks.shape[0] == GOOD_SHOTS
    # The threshold was calibrated on the good shots' looks too, each left out.
    assert max(report.good_scores) == pytest.approx(1.0)
    faded = [_faded(im) for im in held]
    assert all(r.verdict == "good" for r in inspector.inspect(held))
    results = inspector.inspect(faded)
    assert all(r.verdict == "defect" for r in results), [r.score for r in results]
    # The map alone: every faded weave under the threshold (each patch near a good one).
    head = inspector.model.head
    inspector.model.head = replace(head, scoring=replace(head.scoring, look=None))
    try:
        alone = inspector.inspect(faded)
    finally:
        inspector.model.head = head
    assert all(r.score < inspector.thresholds.image for r in alone), [r.score for r in alone]


def test_the_look_joins_from_its_least_number_of_good_shots(weave):
    *_, shots = weave
    defects, goods = [s for s in shots if s.label != "good"], [s for s in shots if s.label == "good"]
    for count in (LOOK_MIN_GOOD - 1, LOOK_MIN_GOOD):
        inspector = Inspector(InspectorConfig(bank_size=512, seed=0))
        report = inspector.fit(defects + goods[:count])
        look = inspector.model.head.scoring.look
        assert report.evidence.endswith("+look") == (count >= LOOK_MIN_GOOD)
        assert (look is None) if count < LOOK_MIN_GOOD else (look.looks.shape[0] == count)


def test_a_look_is_saved_exported_and_run_torch_free_alike(weave, tmp_path):
    from defectkit.exporters.export import export_bundle
    from defectkit.exporters.runtime import load_bundle
    from defectkit.exporters.selfcheck import TOLERANCES, compare

    inspector, _, held, _ = weave
    images = [held[0], _faded(held[1])]
    inspector.save(tmp_path / "model")
    loaded = Inspector.load(tmp_path / "model")
    assert loaded.model.head.scoring.look == inspector.model.head.scoring.look
    bundle = load_bundle(export_bundle(inspector, tmp_path / "bundle", target="onnx", check_images=images))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert json.dumps(manifest).count('"look"') >= 1
    reference = inspector.raw_each(images)
    found = compare(reference, bundle.raw_each(images), TOLERANCES["fp32"], threshold=bundle.thresholds.image)
    assert not found["failures"], found
    assert [r.verdict for r in bundle.inspect(images)] == ["good", "defect"]


def test_inspect_fit_says_when_the_look_joins(weave, tmp_path, capsys):
    from defectkit.cli import main
    from defectkit.datasets import write_folder

    *_, shots = weave
    write_folder(shots, tmp_path / "data")
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "data"), "-o", str(tmp_path / "m"), "--bank-size", "512"]) == 0
    said = capsys.readouterr().out
    assert "+look: the overall look of 10 good images joins the patch map" in said, said
