"""The class head's linear classifier, fitted on the shots' unit descriptors, and its
word in the image score."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from defectkit import Inspector
from defectkit.core.head import AnomalyScoring, ClassHead, describe_image, region_weights
from defectkit.datasets import make_synthetic
from defectkit.errors import ConfigError
from defectkit.inspect.calibrate import Shot, build_class_head, class_classifier, teach_class_head
from defectkit.inspect.config import InspectorConfig


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _draw(rng, label: int, n: int, dims: int = 12) -> np.ndarray:
    """Two classes told apart by the first dimension; the second varies more than that
    from shot to shot in both classes alike (lighting, say), the rest is small noise."""
    x = rng.normal(scale=0.3, size=(n, dims))
    x[:, 0] += 1.0 if label else -1.0
    x[:, 1] += rng.uniform(-2.0, 2.0, size=n)
    return _unit(x)


def _head(prototypes, labels, weights=None, bias=None) -> ClassHead:
    dims = prototypes.shape[1]
    return ClassHead(("good", "scratch"), prototypes, tuple(labels), np.zeros(dims), np.ones(dims),
                     weights=weights, bias=bias)  # fmt: skip


def test_the_linear_head_finds_the_dimension_that_tells_classes_apart():
    rng = np.random.default_rng(0)
    hits = {"prototype": 0, "linear": 0}
    trials, tests = 30, 20
    for _ in range(trials):
        protos = np.concatenate([_draw(rng, 0, 2), _draw(rng, 1, 2)])
        labels = (0, 0, 1, 1)
        weights, bias = class_classifier(protos, labels, 2)
        assert weights.shape == (2, 12) and bias.shape == (2,)
        heads = {"prototype": _head(protos, labels), "linear": _head(protos, labels, weights, bias)}
        for truth in (0, 1):
            for x in _draw(rng, truth, tests // 2):
                for name, head in heads.items():
                    hits[name] += int(np.argmax(head.logits(x, head.similarity(x)))) == truth
    acc = {k: v / (trials * tests) for k, v in hits.items()}
    assert acc["linear"] >= 0.92 and acc["linear"] > acc["prototype"] + 0.03, acc


def test_shots_score_their_own_class_and_classes_weigh_alike():
    rng = np.random.default_rng(1)
    protos = np.concatenate([_draw(rng, 0, 10), _draw(rng, 1, 2)])  # ten good shots, two scratches
    labels = (0,) * 10 + (1,) * 2
    weights, bias = class_classifier(protos, labels, 2)
    scores = protos @ weights.T + bias
    assert (np.argmax(scores, axis=1) == np.array(labels)).all()
    # balanced: the two scratches stand as far above as the ten good shots do
    assert abs(scores[10:, 1].mean() - scores[:10, 0].mean()) < 0.2


def test_a_share_weighs_rows_within_their_class():
    rng = np.random.default_rng(7)
    protos = np.concatenate([_draw(rng, 0, 3), _draw(rng, 1, 2)])
    labels = (0, 0, 0, 1, 1)
    plain = class_classifier(protos, labels, 2)
    np.testing.assert_allclose(class_classifier(protos, labels, 2, np.full(5, 3.0))[0], plain[0])
    # A row with no share counts as not there; the class's other rows take its weight.
    dropped = class_classifier(protos[1:], labels[1:], 2)
    zero = class_classifier(protos, labels, 2, np.array([0.0, 1, 1, 1, 1]))
    np.testing.assert_allclose(zero[0], dropped[0], atol=1e-9)
    np.testing.assert_allclose(zero[1], dropped[1], atol=1e-9)


def test_no_classifier_without_two_classes_and_never_an_unshot_class():
    rng = np.random.default_rng(2)
    protos = _draw(rng, 0, 3)
    assert class_classifier(protos, (0, 0, 0), 2) == (None, None)
    protos = np.concatenate([_draw(rng, 0, 2), _draw(rng, 1, 2)])
    weights, bias = class_classifier(protos, (0, 0, 2, 2), 3)  # class 1 has no shot
    head = ClassHead(("good", "dent", "scratch"), protos, (0, 0, 2, 2), np.zeros(12), np.ones(12),
                     weights=weights, bias=bias)  # fmt: skip
    for x in _draw(rng, 1, 5):
        assert int(np.argmax(head.logits(x, head.similarity(x)))) != 1


def test_the_score_factor_is_the_classifier_margin_over_good():
    rng = np.random.default_rng(3)
    protos = np.concatenate([_draw(rng, 0, 2), _draw(rng, 1, 2)])
    weights, bias = class_classifier(protos, (0, 0, 1, 1), 2)
    head = ClassHead(("good", "scratch"), protos, (0, 0, 1, 1), np.zeros(12), np.ones(12),
                     weights=weights, bias=bias, margin_weight=0.5)  # fmt: skip
    for x in (protos[0], protos[3], *_draw(rng, 1, 3)):
        linear = weights @ x + bias
        assert head.score_factor(x) == pytest.approx(np.exp(0.5 * (linear[1] - linear[0])))
    assert head.score_factor(protos[0]) < 0.5 < 2.0 < head.score_factor(protos[3])  # a good shot, a scratch
    # Nothing to say: no weight (a head saved before), no classifier, or no good class.
    assert replace(head, margin_weight=0.0).score_factor(protos[3]) == 1.0
    assert replace(head, weights=None, bias=None).score_factor(protos[3]) == 1.0
    assert replace(head, classes=("dent", "scratch")).score_factor(protos[3]) == 1.0
    again = ClassHead.from_dict(head.to_dict())
    assert again.margin_weight == 0.5 and again.score_factor(protos[3]) == pytest.approx(head.score_factor(protos[3]))
    assert ClassHead.from_dict({k: v for k, v in head.to_dict().items() if k != "margin_weight"}).margin_weight == 0.0
    with pytest.raises(ValueError, match="margin_weight"):
        ClassHead.from_dict(head.to_dict() | {"margin_weight": -1})


def test_the_fit_lets_the_classifier_speak_only_beside_an_anomaly_score():
    rng = np.random.default_rng(4)
    feats = [rng.normal(size=(6, 5, 5)) for _ in range(4)]
    shots = [Shot(label, f) for label, f in zip(("good", "good", "scratch", "scratch"), feats, strict=True)]
    cfg = InspectorConfig()
    scoring = AnomalyScoring()
    assert build_class_head(shots, ("good", "scratch"), scoring, cfg).margin_weight == cfg.margin_weight == 0.5
    off = InspectorConfig(margin_weight=0.0)  # the user's switch: the anomaly evidence alone
    assert build_class_head(shots, ("good", "scratch"), scoring, off).margin_weight == 0.0
    sorting = [Shot(label, f) for label, f in zip(("dent", "dent", "scratch", "scratch"), feats, strict=True)]
    assert build_class_head(sorting, ("dent", "scratch"), None, cfg).margin_weight == 0.0  # type-only
    lone = build_class_head(shots[:2], ("good",), scoring, cfg)  # good shots only: no classifier
    assert lone.weights is None and lone.margin_weight == 0.0


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_a_margin_weight_a_saved_head_could_not_load_is_refused_before_the_fit(weight):
    shots = make_synthetic(n_good=2, defects={"scratch": 2}, size=(64, 64), seed=1)
    with pytest.raises(ConfigError, match="margin_weight"):
        Inspector(InspectorConfig(margin_weight=weight)).fit(shots)



_CHECKS = (np.indices((6, 6)).sum(0) % 2) * 2.0 - 1.0


def _surface(rng, look: float, defect: float) -> np.ndarray:
    """A 4 x 6 x 6 feature map: channels 0-2 the material (its level and texture by
    ``look``), channel 3 a defect's signal (``defect``: its strength), little noise."""
    f = rng.normal(scale=0.05, size=(4, 6, 6))
    f[:3] += look + (1.5 + 0.5 * look) * _CHECKS
    f[3] += defect * (1.0 + _CHECKS)
    return f


def _margin(head: ClassHead, features: np.ndarray) -> float:
    linear = head.linear(describe_image(features, region_weights(None, features.shape[1:], 1.0)))
    return float(linear[1] - linear[0])


def test_line_images_judged_good_teach_the_classifier_another_look_of_good():
    # Good shots of one material, scratches on another (aitex: defect types lie on some
    # fabrics). From the shots alone the classifier leans on the material as much as on
    # the defect and puts a good part of the second material on the scratch side.
    rng = np.random.default_rng(5)
    shots = [Shot("good", _surface(rng, 1.0, 0.0)) for _ in range(2)]
    shots += [Shot("scratch", _surface(rng, -1.0, 1.0)) for _ in range(2)]
    line = [Shot("good", _surface(rng, -1.0, 0.0)) for _ in range(10)]
    cfg = InspectorConfig()
    alone = build_class_head(shots, ("good", "scratch"), None, cfg)
    taught, used = teach_class_head(alone, line, None, cfg)
    assert used == len(line)
    other_good = [_surface(rng, -1.0, 0.0) for _ in range(5)]
    scratches = [_surface(rng, -1.0, 1.0) for _ in range(5)]
    assert min(_margin(alone, f) for f in other_good) > 0.5  # the shots alone: scratch
    assert max(_margin(taught, f) for f in other_good) < -0.5  # with the line: good
    assert min(_margin(taught, f) for f in scratches) > 0.5  # and a scratch is still one
    # The line images are rows of the classifier, never prototypes (captions name shots).
    assert taught.prototypes.shape == alone.prototypes.shape and taught.labels == alone.labels


def test_line_images_that_make_the_defect_shots_look_good_are_not_used():
    # The line images judged good are all a scratch as strong as the shots' on average:
    # with them, a left-out scratch shot would be called good, so the classifier is the
    # shots' alone. Half of them scratched still leaves the scratch shots told apart.
    rng = np.random.default_rng(6)
    shots = [Shot("good", _surface(rng, 1.0, 0.0)) for _ in range(2)]
    shots += [Shot("scratch", _surface(rng, -1.0, strength)) for strength in (1.0, 0.5)]
    cfg = InspectorConfig()
    alone = build_class_head(shots, ("good", "scratch"), None, cfg)
    scratched = [Shot("good", _surface(rng, -1.0, 0.75)) for _ in range(10)]
    head, used = teach_class_head(alone, scratched, None, cfg)
    assert head is alone and used == 0
    half = [Shot("good", _surface(rng, -1.0, 0.75 * (i % 2))) for i in range(10)]
    taught, used = teach_class_head(alone, half, None, cfg)
    assert used == 10 and not np.array_equal(taught.weights, alone.weights)
    # Nothing to teach: no line images, or no good class to teach.
    assert teach_class_head(alone, [], None, cfg)[1] == 0
    sorter = build_class_head([replace(s, label="dent") if s.label == "good" else s for s in shots], ("dent", "scratch"), None, cfg)
    head, used = teach_class_head(sorter, half, None, cfg)
    assert head is sorter and used == 0
