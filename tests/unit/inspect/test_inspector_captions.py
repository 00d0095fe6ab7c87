"""Captions of a real fitted Inspector (embedded efficientnet_lite0) on held-out synthetic defects.

Checks the statements the inspector's localisation supports: the place holds the true
centre, the type is the class prediction, notes come from shots of the stated class,
elongated defects point the right way, good parts read "No defect found". Sizes are
checked on exact masks (test_caption.py) and measured in benchmarks/caption_accuracy.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from defectkit.core.caption.geometry import cells_of
from defectkit.core.head import CONTRAST, describe_image, region_weights
from defectkit.core.labels import GOOD
from defectkit.core.tiling import cut_tiles, stitch
from defectkit.datasets import angle_difference, make_synthetic
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector

KINDS = {"scratch": 6, "hole": 6}


@pytest.fixture(scope="module")
def fitted():
    samples = make_synthetic(n_good=6, defects=KINDS, size=(128, 128), seed=4, texture="metal")
    support, test, seen = [], [], {}
    for s in samples:
        seen[s.label] = seen.get(s.label, 0) + 1
        if seen[s.label] <= 2:
            support.append(replace(s, note=f"{s.label} example {seen[s.label]}"))
        else:
            test.append(s)
    torch.manual_seed(0)
    inspector = Inspector(InspectorConfig(augmentations=1, bank_size=512, seed=0))
    inspector.fit(support)
    return inspector, support, test


@pytest.fixture(scope="module")
def captioned(fitted):
    inspector, _, test = fitted
    results = inspector.inspect([s.load_image() for s in test])
    return [(s, r, [d.to_dict() for d in r.defects], r.caption) for s, r in zip(test, results, strict=True)]


def test_shots_are_recorded_in_prototype_order(fitted):
    inspector, support, _ = fitted
    context = inspector.caption_context
    # fit's prototype order: the good shots, then the defect shots.
    shots = [s for s in support if s.label == GOOD] + [s for s in support if s.label != GOOD]
    assert context.shot_labels == tuple(s.label for s in shots)
    assert context.shot_notes == tuple(s.note for s in shots)
    assert context.vocabulary == ()  # efficientnet_lite0 has no text tower
    # Distances to the defect patches only where the evidence reads them (contrast).
    contrast = inspector.model.head.scoring.evidence == CONTRAST
    assert inspector.output_names == ("features", "distance") + (("defect_distance",) if contrast else ())


def test_the_prototype_similarity_is_of_the_pooled_region_of_the_stitched_grids(fitted):
    inspector, _, test = fitted
    image = test[0].load_image()
    model, head = inspector.model, inspector.model.head
    tiles, plan = cut_tiles(image, model.tiles)
    with torch.inference_mode():
        out = model(torch.from_numpy(tiles)).map(lambda t: t.numpy())
    feats = stitch(out.features, model.tiles, plan)
    distance = stitch(out.distance[:, None], model.tiles, plan)[0]
    defect = None if out.defect_distance is None else stitch(out.defect_distance[:, None], model.tiles, plan)[0]
    amap, score = head.scoring.apply(distance, defect)
    descriptor = describe_image(feats, region_weights(amap, amap.shape, head.classes.sharpness))
    expected = head.classes.similarity(descriptor)
    raw = inspector.raw([image])
    assert raw.names == ("score", "anomaly_map", "class_logits", "prototype_similarity")
    assert raw.vocab_scores is None  # no text tower
    # The score: the anomaly evidence's, times what the class head says of the region.
    assert raw.score[0] == pytest.approx(score * head.classes.score_factor(descriptor), rel=1e-5)
    np.testing.assert_allclose(raw.prototype_similarity[0], expected, rtol=1e-5, atol=1e-4)
    sims = raw.prototype_similarity
    assert sims.shape == (1, len(inspector.caption_context.shot_labels))
    # The class logits are the linear classifier's scores of the same region descriptor.
    assert head.classes.weights is not None
    expected_logits = 2.0 * (head.classes.weights @ head.classes.embed(descriptor) + head.classes.bias)
    np.testing.assert_allclose(raw.class_logits[0], expected_logits / head.classes.temperature, rtol=1e-4, atol=1e-2)


def test_captions_state_only_what_the_result_supports(captioned):
    detected = 0
    for sample, result, records, sentence in captioned:
        if not result.is_defective:
            assert records == [] and sentence.startswith("No defect found (score ")
            continue
        first = records[0]
        # the class prediction, nothing else: the nearest type, hedged when nearer good
        assert result.label == first["type"]
        if first["nearer_good"]:  # no likeness to a defect shot is claimed
            assert first["note"] is None and "labelled example" not in sentence
        else:
            assert first["note"]["text"].startswith(first["type"] + " example")
        hedged = first["confidence"] < 0.6
        assert first["uncertain"] == hedged
        if first["nearer_good"]:
            expected = f"Possibly {first['type']} (the nearest labelled type,"
        elif hedged:
            expected = f"Possibly {result.label} (uncertain,"
        else:
            expected = result.label.capitalize() + ","
        assert sentence.startswith(expected)
        assert "mm" not in sentence
        if sample.label == GOOD or not first["localised"]:
            continue
        detected += 1
        (true_cell,) = cells_of(*sample.meta["centre"], 128, 128, margin=0.0)
        assert true_cell in first["position"], (sample.key, sentence)
        if sample.meta["elongation"] >= 3.0 and first["orientation"] is not None:
            assert (
                angle_difference(first["orientation_deg"], sample.meta["orientation_deg"]) <= 30.0
            )
    assert detected >= 8  # most held-out defects are found, so the checks above bite


def test_good_parts_read_no_defect(captioned):
    goods = [(r, s) for sample, r, _, s in captioned if sample.label == GOOD]
    assert goods and all(s.startswith("No defect found") for r, s in goods if not r.is_defective)
