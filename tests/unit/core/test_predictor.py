"""The one Predictor: tiles in batches, stitching, the numpy head, decide + describe per image.

A brightness "graph" stands in for the model: each tile's patch features are its mean
gray value and its inverse, its distance to the good bank is 4 x the gray value, so a
bright image is defective and the stitched map shows where it is bright.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectkit.core.caption import CaptionContext
from defectkit.core.head import AnomalyScoring, ClassHead, Head, describe_image, region_weights
from defectkit.core.predictor import BATCH_SIZE, ModelInfo, Predictor, ResizePredictor
from defectkit.core.results import RawOutputs, Thresholds, TileOutputs
from defectkit.core.tiling import TileSpec, plan_tiles
from defectkit.errors import ConfigError

SPEC = TileSpec(size=(16, 16), stride=4, margin=4)


def _patch_gray(x: np.ndarray, stride: int) -> np.ndarray:
    """N x 3 x H x W -> N x H/s x W/s mean gray of each patch."""
    n, _, h, w = x.shape
    return x.mean(axis=1).reshape(n, h // stride, stride, w // stride, stride).mean(axis=(2, 4))


class BrightnessTiles:
    """A graph stand-in on tiles; records the batch sizes it was called with."""

    def __init__(self, *, with_distance: bool = True) -> None:
        self.batches: list[int] = []
        self.with_distance = with_distance

    def run(self, x: np.ndarray) -> TileOutputs:
        self.batches.append(len(x))
        gray = _patch_gray(x, SPEC.stride).astype(np.float32)
        features = np.stack([gray, 1.0 - gray], axis=1)
        return TileOutputs(features=features, distance=4.0 * gray if self.with_distance else None)


def _class_head(classes: tuple[str, ...], values: tuple[float, ...], scoring) -> ClassHead:
    """One prototype per class: the descriptor of a uniform image of that gray value."""
    descs = []
    for v in values:
        feats = np.stack([np.full((4, 4), v), np.full((4, 4), 1 - v)]).astype(np.float32)
        amap = None if scoring is None else scoring.apply(4.0 * feats[0], None)[0]
        descs.append(describe_image(feats, region_weights(amap, (4, 4), 2.0)))
    center, scale = np.zeros(len(descs[0])), np.ones(len(descs[0]))
    unit = ClassHead(classes, np.zeros((0, len(center))), (), center, scale)
    return ClassHead(classes, unit.embed(np.stack(descs)), tuple(range(len(classes))), center, scale)


SCORING = AnomalyScoring(sigma=0, top_fraction=1.0)  # the score is the map's mean
INFO = ModelInfo(
    classes=("good", "dent"), thresholds=Thresholds(1.0, 1.0, min_defect_area=1), input_size=SPEC.size,
    caption_context=CaptionContext(("good", "dent"), (None, "a dent from the press")),
    tiles=SPEC, head=Head(classes=_class_head(("good", "dent"), (0.05, 0.95), SCORING), scoring=SCORING),
)  # fmt: skip


def image(value: int, size=(16, 16)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def test_tiles_go_in_batches_of_the_one_batch_size_and_results_come_at_the_image_size():
    engine = BrightnessTiles()
    images = [image(10)] * (BATCH_SIZE + 3) + [image(250, (40, 20))]
    assert plan_tiles(SPEC, (40, 20)).n_tiles == 8
    results = Predictor(engine, INFO).inspect(images, [f"{i}.png" for i in range(len(images))])
    # 16 one-tile images, then 3 one-tile images and an 8-tile image in one call.
    assert engine.batches == [BATCH_SIZE, 11]
    assert [r.verdict for r in results[:2]] == ["good", "good"] and results[-1].verdict == "defect"
    assert results[-1].label == "dent" and results[0].label == "good"
    assert results[-1].anomaly_map.shape == (40, 20) and results[-1].path == f"{len(images) - 1}.png"
    assert results[-1].score == pytest.approx(4 * 250 / 255, rel=1e-5)
    assert results[-1].caption.endswith("like the labelled example 'a dent from the press'.")
    assert set(results[0].timings) == {"model"} and results[0].mode == "inspect"


def test_a_bright_spot_on_a_tiled_image_is_mapped_where_it_is():
    big = image(10, (60, 90))
    big[36:44, 64:72] = 250  # across a tile border: tiles start every 8 px
    assert plan_tiles(SPEC, big.shape[:2]).n_tiles > 10
    (result,) = Predictor(BrightnessTiles(), INFO).inspect([big])
    assert result.anomaly_map.shape == (60, 90)
    y, x = np.unravel_index(np.argmax(result.anomaly_map), result.anomaly_map.shape)
    assert 36 <= y < 44 and 64 <= x < 72
    assert result.anomaly_map[5, 5] == pytest.approx(4 * 10 / 255, rel=1e-4)  # calibrated by pixel_ref 1


def test_raw_concatenates_one_size_and_an_empty_list_keeps_the_head_shapes():
    predictor = Predictor(BrightnessTiles(), INFO, batch_size=2)
    raw = predictor.raw([image(10, (24, 32)), image(20, (24, 32)), image(30, (24, 32))])
    assert raw.score.shape == (3,) and raw.anomaly_map.shape == (3, 24, 32)
    np.testing.assert_allclose(raw.score, 4 * np.array([10, 20, 30]) / 255, rtol=1e-5)
    assert raw.prototype_similarity.shape == (3, 2)
    empty = predictor.raw([])
    assert empty.score.shape == (0,) and empty.class_logits.shape == (0, 2) and empty.vocab_scores is None
    with pytest.raises(ConfigError, match="raw_each"):
        predictor.raw([image(10), image(10, (24, 32))])
    each = predictor.raw_each([image(10), image(10, (24, 32))])
    assert [r.anomaly_map.shape for r in each] == [(16, 16), (24, 32)]


def test_with_thresholds_is_a_new_predictor_under_the_one_rule():
    predictor = Predictor(BrightnessTiles(), INFO)
    lower = predictor.with_thresholds(image=0.2)
    assert lower.info.thresholds == Thresholds(0.2, 0.2, 1) and predictor.info.thresholds.image == 1.0
    assert lower.engine is predictor.engine
    assert lower.inspect([image(30)])[0].verdict == "defect"
    assert predictor.inspect([image(30)])[0].verdict == "good"


def test_a_type_only_model_names_a_type_and_no_verdict():
    classes = ("dent", "stain")
    info = ModelInfo(
        classes=classes, thresholds=Thresholds(math.inf, math.inf), input_size=SPEC.size,
        tiles=SPEC, head=Head(classes=_class_head(classes, (0.05, 0.95), None)),
    )  # fmt: skip
    assert not info.has_verdict
    results = Predictor(BrightnessTiles(with_distance=False), info).inspect([image(10), image(245, (30, 50))])
    assert [r.label for r in results] == ["dent", "stain"]
    for r in results:
        assert r.mode == "type_only" and r.verdict is None and math.isnan(r.score)
        record = r.to_dict()
        assert record["verdict"] is None and record["score"] is None and record["mode"] == "type_only"


def test_paths_must_match_batch_size_must_be_positive_and_tiles_are_needed():
    with pytest.raises(ConfigError, match="2 images but 1 paths"):
        Predictor(BrightnessTiles(), INFO).inspect([image(1), image(2)], ["a.png"])
    with pytest.raises(ConfigError, match="batch_size"):
        Predictor(BrightnessTiles(), INFO, batch_size=0)
    with pytest.raises(ConfigError, match="tiles and head"):
        Predictor(BrightnessTiles(), ModelInfo(("good", "dent"), Thresholds(1.0, 1.0), (16, 16)))


class BrightnessImages:
    """A format-1/2 graph stand-in: whole resized images -> raw outputs."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, x: np.ndarray) -> RawOutputs:
        self.shapes.append(x.shape)
        gray = x.mean(axis=1)
        score = 4.0 * gray.mean(axis=(1, 2))
        logits = np.stack([-score, score], axis=1)
        return RawOutputs(score, 4.0 * gray, logits, np.stack([-score, score], axis=1))


def test_the_resize_predictor_runs_old_bundles_graphs_on_resized_images():
    engine = BrightnessImages()
    info = ModelInfo(("good", "dent"), Thresholds(1.0, 1.0, min_defect_area=1), (16, 16))
    predictor = ResizePredictor(engine, info, batch_size=2)
    results = predictor.inspect([image(10, (24, 32)), image(250, (40, 20)), image(10)])
    assert [s[0] for s in engine.shapes] == [2, 1] and {s[2:] for s in engine.shapes} == {(16, 16)}
    assert [r.verdict for r in results] == ["good", "defect", "good"]
    assert results[1].anomaly_map.shape == (40, 20)
    assert predictor.raw([]).anomaly_map.shape == (0, 16, 16)
