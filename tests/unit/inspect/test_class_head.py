"""The class head's linear classifier, fitted on the shots' unit descriptors."""

from __future__ import annotations

import numpy as np

from defectkit.core.head import ClassHead
from defectkit.inspect.calibrate import class_classifier


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
