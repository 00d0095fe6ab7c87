"""The numpy head after the graph: evidence, calibrated scores, prototypes, JSON state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from defectkit.core.head import (
    CONTRAST,
    DISTANCE,
    AnomalyScoring,
    ClassHead,
    Head,
    describe_image,
    edge_cells,
    edge_factors,
    edge_factors_left_out,
    edge_scaled,
    evidence_map,
    region_weights,
    top_mean,
    vocabulary_scores,
)


def test_top_mean_averages_the_largest_share_and_at_least_one():
    values = np.arange(100, dtype=np.float32)
    assert top_mean(values, 0.1) == pytest.approx(np.mean(np.arange(90, 100)))
    assert top_mean(values, 0.0001) == 99.0  # at least one value
    assert top_mean(values.reshape(10, 10), 1.0) == pytest.approx(49.5)
    assert top_mean(np.zeros(0), 0.5) == 0.0


def test_evidence_maps_distance_and_contrast():
    rng = np.random.default_rng(0)
    d_good = rng.uniform(0.1, 3.0, (6, 7)).astype(np.float32)
    d_defect = rng.uniform(0.1, 3.0, (6, 7)).astype(np.float32)
    np.testing.assert_allclose(evidence_map(DISTANCE, d_good, d_defect, 0), d_good)
    np.testing.assert_allclose(evidence_map(CONTRAST, d_good, None, 0), d_good)  # nothing to contrast
    contrast = evidence_map(CONTRAST, d_good, d_defect, 0)
    assert 0.0 <= contrast.min() and contrast.max() <= 1.0
    # near a defect patch and far from any good one: near 1, and the reverse near 0
    edge = evidence_map(CONTRAST, np.array([[5.0, 1e-3]]), np.array([[1e-3, 5.0]]), 0)
    assert edge[0, 0] > 0.99 and edge[0, 1] < 0.01
    smoothed = evidence_map(DISTANCE, d_good, None, 1.0)
    assert smoothed.std() < d_good.std() and smoothed.mean() == pytest.approx(d_good.mean(), rel=0.05)
    with pytest.raises(ValueError, match="unknown evidence"):
        evidence_map("grain", d_good, d_defect, 0)


def test_scoring_calibrates_so_one_is_the_worst_good_reference():
    scoring = AnomalyScoring(sigma=0, top_fraction=0.01, pixel_ref=2.0, image_ref=4.0)
    distance = np.ones((10, 10), np.float32)
    distance[3, 4] = 8.0
    amap, score = scoring.apply(distance, None)
    assert amap[3, 4] == pytest.approx(4.0) and amap[0, 0] == pytest.approx(0.5)
    assert score == pytest.approx(8.0 / 4.0)  # top 1 % = the one patch, over image_ref
    inside = np.ones((10, 10), bool)
    inside[3, 4] = False  # the odd patch lies outside the region: neither scored nor mapped
    amap_in, score_in = scoring.apply(distance, None, inside)
    assert amap_in[3, 4] == 0.0 and score_in == pytest.approx(1.0 / 4.0)


def test_a_uniformly_raised_map_scores_above_one_only_with_the_global_statistic():
    rng = np.random.default_rng(1)
    good = rng.uniform(0.0, 1.0, (20, 20)).astype(np.float32)
    good[5, 5] = 3.0  # a good shot's most unusual patch sets the local reference
    refs = {"pixel_ref": 3.0, "image_ref": top_mean(good, 0.01), "sigma": 0, "top_fraction": 0.01}
    local = AnomalyScoring(**refs)
    both = AnomalyScoring(**refs, global_ref=float(good.mean()))
    assert local.statistic(good) == pytest.approx(1.0) and both.statistic(good) == pytest.approx(1.0)
    raised = np.clip(good, 0, 1) * 0.5 + 0.8  # a changed texture: every patch a bit odd
    assert raised.max() < 3.0
    assert local.statistic(raised) < 1.0, "no single patch is odder than the good reference"
    assert both.statistic(raised) > 1.0, "but the whole part is"


def test_edge_cells_count_the_rings_in_from_the_nearest_side():
    cells = edge_cells((6, 7), rings=2)
    assert cells[0, 3] == cells[5, 3] == cells[3, 0] == cells[3, 6] == cells[0, 0] == 0
    assert cells[1, 3] == cells[4, 3] == cells[3, 1] == cells[3, 5] == cells[1, 1] == 1
    assert cells[2, 2] == cells[3, 4] == 2  # inside
    assert (edge_cells((3, 3), rings=2) < 2).all()  # a tiny map has no inside


def _edged(rng: np.random.Generator, shape=(16, 20)) -> np.ndarray:
    """A good map whose outer ring runs 1.8 x as far from the bank, the next 1.3 x."""
    m = rng.uniform(0.9, 1.1, shape).astype(np.float32)
    return m * np.array([1.8, 1.3, 1.0], np.float32)[edge_cells(shape, rings=2)]


def test_edge_factors_learn_how_far_good_edges_run_and_scaling_flattens_them():
    rng = np.random.default_rng(2)
    goods = [_edged(rng) for _ in range(2)]
    inner = goods[0][2:-2, 2:-2]
    assert 0.85 < inner.min() and inner.max() < 1.15
    factors = edge_factors(goods, rings=2)
    assert len(factors) == 2
    assert factors[0] == pytest.approx(1.8, rel=0.05) and factors[1] == pytest.approx(1.3, rel=0.05)
    new = _edged(rng)
    new[8, 10] = 1.6  # a defect inside the part, not as far as the edge runs
    scaled = edge_scaled(new, factors)
    assert np.unravel_index(np.argmax(new), new.shape)[0] in (0, 15)  # unscaled: an edge is highest
    assert np.unravel_index(np.argmax(scaled), scaled.shape) == (8, 10)  # scaled: the defect
    assert scaled[8, 10] == pytest.approx(1.6) and np.delete(scaled.ravel(), 8 * 20 + 10).max() < 1.25
    assert edge_scaled(new, ()) is new and edge_scaled(None, factors) is None
    # each map's factors learned from the others, as edge_factors of the others
    third = _edged(rng) * 1.1
    left_out = edge_factors_left_out([*goods, third], rings=2)
    assert left_out == [edge_factors([goods[1], third], rings=2), edge_factors([goods[0], third], rings=2), factors]
    # nothing to learn from: no inner cells, or maps of zeros (a shot against itself)
    assert edge_factors([np.ones((3, 3))], rings=2) == ()
    assert edge_factors([np.zeros((16, 16))], rings=2) == ()
    # the scoring applies them, before its statistics
    scoring = AnomalyScoring(sigma=0, top_fraction=0.001, edges=factors)  # the top patch
    assert scoring.apply(new, None)[1] == pytest.approx(1.6)
    assert AnomalyScoring(sigma=0, top_fraction=0.001).apply(new, None)[1] == pytest.approx(float(new.max()))


def test_edge_factors_round_trip_and_are_checked():
    scoring = AnomalyScoring(edges=(1.5, 1.2), defect_edges=(0.8, 0.9))
    assert AnomalyScoring.from_dict(json.loads(json.dumps(scoring.to_dict()))) == scoring
    old = {k: v for k, v in scoring.to_dict().items() if k not in ("edges", "defect_edges")}
    assert AnomalyScoring.from_dict(old).edges == ()  # a model saved before: scored as it was
    for bad in ([1.0, 0.0], [1.0, float("nan")], [-1.0]):
        with pytest.raises(ValueError, match="edges must be positive numbers, one per ring"):
            AnomalyScoring.from_dict({**scoring.to_dict(), "edges": bad})


def test_region_weights_concentrate_on_anomalous_patches_and_respect_the_region():
    amap = np.zeros((8, 8), np.float32)
    amap[2, 3] = 5.0
    w = region_weights(amap, (8, 8), sharpness=2.0)
    assert w.sum() == pytest.approx(1.0) and np.unravel_index(w.argmax(), w.shape) == (2, 3)
    flat = region_weights(None, (8, 8), sharpness=2.0)
    np.testing.assert_allclose(flat, 1 / 64)
    inside = np.zeros((8, 8), bool)
    inside[4:, 4:] = True
    w_in = region_weights(amap, (8, 8), 2.0, inside)
    assert w_in[~inside].sum() == 0 and w_in.sum() == pytest.approx(1.0)


def _class_head(dim: int = 3, classes=("good", "scratch", "spot")) -> tuple[ClassHead, np.ndarray]:
    rng = np.random.default_rng(2)
    descs = rng.normal(size=(2 * len(classes), 4 * dim + 2))
    center, scale = descs.mean(axis=0), 1.0 / descs.std(axis=0)
    head = ClassHead(classes=tuple(classes), prototypes=np.zeros((0, descs.shape[1])), labels=(),
                     center=center, scale=scale)  # fmt: skip
    labels = tuple(i // 2 for i in range(len(descs)))
    return ClassHead(classes=tuple(classes), prototypes=head.embed(descs), labels=labels,
                     center=center, scale=scale, temperature=0.1, sharpness=1.5), descs  # fmt: skip


def test_class_logits_are_each_class_nearest_prototype():
    head, descs = _class_head()
    sims = head.similarity(descs[3])
    assert sims.shape == (6,) and int(np.argmax(sims)) == 3 and sims[3] == pytest.approx(0.0, abs=1e-5)
    logits = head.logits(descs[3], sims)
    assert logits.shape == (3,) and int(np.argmax(logits)) == 1  # prototype 3 is a scratch
    np.testing.assert_allclose(logits, [sims[0:2].max(), sims[2:4].max(), sims[4:6].max()])


def test_a_linear_head_scores_by_its_weights_and_round_trips():
    base, descs = _class_head()
    weights = np.zeros((3, descs.shape[1]))
    weights[2] = base.embed(descs[4])  # "spot" along its first shot, the others flat
    head = ClassHead(classes=base.classes, prototypes=base.prototypes, labels=base.labels, center=base.center,
                     scale=base.scale, temperature=0.1, weights=weights, bias=np.array([0.1, 0.0, -0.2]))  # fmt: skip
    logits = head.logits(descs[4], head.similarity(descs[4]))
    np.testing.assert_allclose(logits, 2.0 * np.array([0.1, 0.0, 1.0 - 0.2]) / 0.1, rtol=1e-5)
    again = ClassHead.from_dict(json.loads(json.dumps(head.to_dict())))
    np.testing.assert_allclose(again.logits(descs[1], again.similarity(descs[1])), head.logits(descs[1], head.similarity(descs[1])))
    old = head.to_dict() | {"weights": None, "bias": None}  # a head saved before: nearest prototype
    assert ClassHead.from_dict(old).weights is None
    with pytest.raises(ValueError, match="do not fit"):
        ClassHead.from_dict(head.to_dict() | {"bias": [0.0, 1.0]})
    with pytest.raises(ValueError, match="finite"):
        ClassHead.from_dict(head.to_dict() | {"bias": [0.0, float("nan"), 1.0]})


def test_describe_image_has_region_and_overall_halves():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(3, 6, 6))
    feats[:, 2, 2] = 10.0
    weights = np.zeros((6, 6), np.float32)
    weights[2, 2] = 1.0
    desc = describe_image(feats, weights)
    assert desc.shape == (4 * 3 + 2,)
    np.testing.assert_allclose(desc[:3], 10.0)  # the region is that one patch
    np.testing.assert_allclose(desc[3:6], 0.0, atol=1e-6)
    np.testing.assert_allclose(desc[6:9], feats.reshape(3, -1).mean(axis=1), rtol=1e-6)  # float32 sums
    np.testing.assert_allclose(desc[9:12], feats.reshape(3, -1).std(axis=1), rtol=1e-6)
    inside = np.zeros((6, 6), bool)
    inside[:3] = True  # the overall half over the cells inside only
    within = describe_image(feats, weights, inside)
    np.testing.assert_allclose(within[6:9], feats[:, :3].reshape(3, -1).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(within[9:12], feats[:, :3].reshape(3, -1).std(axis=1), rtol=1e-6)


def _head(scoring: AnomalyScoring | None, vocabulary: np.ndarray | None = None) -> Head:
    classes = ("good", "scratch", "spot") if scoring is not None else ("scratch", "spot", "dent")
    return Head(classes=_class_head(classes=classes)[0], scoring=scoring, vocabulary=vocabulary)


@pytest.mark.parametrize("scoring", [None, AnomalyScoring(CONTRAST, 0.5, 0.01, 1.5, 2.5, 0.7)])
@pytest.mark.parametrize("with_vocab", [False, True])
def test_head_round_trips_through_json(scoring, with_vocab):
    vocab = None
    if with_vocab:
        vocab = np.random.default_rng(4).normal(size=(5, 16)).astype(np.float32)
        vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
    head = _head(scoring, vocab)
    again = Head.from_dict(json.loads(json.dumps(head.to_dict())))
    assert again.scoring == head.scoring and again.has_verdict == (scoring is not None)
    assert again.classes.classes == head.classes.classes and again.classes.labels == head.classes.labels
    np.testing.assert_allclose(again.classes.prototypes, head.classes.prototypes, atol=1e-6)
    np.testing.assert_allclose(again.classes.center, head.classes.center)
    assert again.classes.temperature == 0.1 and again.classes.sharpness == 1.5
    if with_vocab:
        np.testing.assert_allclose(again.vocabulary, vocab, atol=1e-6)
    else:
        assert again.vocabulary is None
    with pytest.raises(ValueError, match="unknown evidence"):
        AnomalyScoring.from_dict({**AnomalyScoring().to_dict(), "evidence": "grain"})


def test_type_only_head_scores_nan_and_still_classifies():
    head = _head(None)
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(3, 5, 5)).astype(np.float32)
    raw, amap = head.outputs(features=feats)
    assert amap is None and math.isnan(float(raw.score))
    assert raw.anomaly_map.shape == (5, 5) and not raw.anomaly_map.any()
    assert raw.class_logits.shape == (3,) and raw.prototype_similarity.shape == (6,)
    # With a scoring, the same features get a finite score and a map.
    scored = _head(AnomalyScoring(sigma=0, top_fraction=0.04))
    raw2, amap2 = scored.outputs(features=feats, distance=rng.uniform(size=(5, 5)).astype(np.float32))
    assert np.isfinite(raw2.score) and amap2 is not None and amap2.shape == (5, 5)


def test_vocabulary_scores_are_cosines_of_the_pooled_region():
    rng = np.random.default_rng(6)
    embed = rng.normal(size=(8, 4, 4)).astype(np.float32)
    vocab = rng.normal(size=(3, 8))
    vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
    weights = np.zeros((8, 8), np.float32)  # a finer grid than the embeddings'
    weights[2:4, 4:6] = 0.25  # exactly token (1, 2)
    scores = vocabulary_scores(embed, weights, vocab)
    token = embed[:, 1, 2] / np.linalg.norm(embed[:, 1, 2])
    np.testing.assert_allclose(scores, vocab @ token, atol=1e-5)
    assert np.abs(scores).max() <= 1.0 + 1e-6
