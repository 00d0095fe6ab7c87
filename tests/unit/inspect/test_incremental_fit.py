"""Incremental fit (issue 19 item 4): a refit through the feature cache extracts only new
images and gives the model a full refit gives (thresholds, scores within 1e-6, classes)."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.datasets import make_synthetic
from defectkit.inspect.feature_cache import SUFFIX, FeatureCache
from defectkit.inspect.inspector import Inspector, InspectorConfig

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def data():
    samples = make_synthetic(n_good=6, defects={"scratch": 4, "spot": 4}, size=(96, 96), seed=11, texture="fabric")
    by = {label: [s for s in samples if s.label == label] for label in ("good", "scratch", "spot")}
    held_out = [s.load_image() for s in by["good"][4:] + by["scratch"][3:] + by["spot"][3:]]
    return by, held_out


@pytest.fixture(scope="module")
def backbone():
    """One embedded backbone for every inspector here (it is frozen; building it is slow)."""
    return Inspector(CONFIG).backbone


CONFIG = InspectorConfig(bank_size=512, seed=0)


def _inspector(backbone, config=CONFIG):
    return Inspector(config, backbone=backbone)


def assert_same_model(incremental: Inspector, full: Inspector, images) -> None:
    """Same classes, thresholds, banks; scores within TOLERANCE; same predictions."""
    assert incremental.classes == full.classes
    a, b = incremental.thresholds, full.thresholds
    assert a.image == pytest.approx(b.image, abs=TOLERANCE) and a.pixel == pytest.approx(b.pixel, abs=TOLERANCE)
    np.testing.assert_allclose(incremental.model.bank.numpy(), full.model.bank.numpy(), atol=TOLERANCE)
    ours, theirs = incremental.inspect(images), full.inspect(images)
    np.testing.assert_allclose([r.score for r in ours], [r.score for r in theirs], atol=TOLERANCE, rtol=0)
    assert [(r.verdict, r.label) for r in ours] == [(r.verdict, r.label) for r in theirs]
    np.testing.assert_allclose(
        [list(r.probabilities.values()) for r in ours], [list(r.probabilities.values()) for r in theirs],
        atol=TOLERANCE,
    )  # fmt: skip


def test_adding_a_shot_extracts_it_alone_and_equals_a_full_refit(data, backbone):
    by, held_out = data
    shots = by["good"][:2] + by["scratch"][:2] + by["spot"][:2]
    cache = FeatureCache()
    inspector = _inspector(backbone)
    first = inspector.fit(shots, cache=cache)
    assert (first.features_extracted, first.features_cached) == (6, 0)
    assert (cache.stats.hits, cache.stats.misses) == (0, 6)

    more = shots + [by["good"][2]]
    again = inspector.fit(more, cache=cache)
    assert (again.features_extracted, again.features_cached) == (1, 6)
    assert (cache.stats.hits, cache.stats.misses) == (6, 7)

    full = _inspector(backbone)
    report = full.fit(more)
    assert (report.features_extracted, report.features_cached) == (7, 0)  # no cache: all extracted
    assert again.good_scores == pytest.approx(report.good_scores, abs=TOLERANCE)
    assert_same_model(inspector, full, held_out)


def test_a_new_class_through_the_cache_equals_a_full_fit(data, backbone):
    by, held_out = data
    cache = FeatureCache()
    inspector = _inspector(backbone)
    inspector.fit(by["good"][:2] + by["scratch"][:2], cache=cache)
    assert inspector.classes == ("good", "scratch")

    shots = by["good"][:2] + by["scratch"][:2] + by["spot"][:2]
    report = inspector.fit(shots, cache=cache)
    assert (report.features_extracted, report.features_cached) == (2, 4)
    assert inspector.classes == ("good", "scratch", "spot")
    full = _inspector(backbone)
    full.fit(shots)
    assert_same_model(inspector, full, held_out)


def test_augmented_copies_and_unlabelled_images_are_cached_too(data, backbone):
    by, held_out = data
    config = InspectorConfig(bank_size=512, seed=0, augmentations=2)
    shots = by["good"][:2] + by["scratch"][:2]
    unlabelled = [s.load_image() for s in by["good"][2:4]]
    cache = FeatureCache()
    inspector = _inspector(backbone, config)
    first = inspector.fit(shots, unlabelled=unlabelled, cache=cache)
    # Goods with 2 copies each, defects, unlabelled; a copy the augmenter left unchanged
    # is its original's bytes, so it is served from the cache within the same fit.
    assert first.features_extracted + first.features_cached == 2 * 3 + 2 + 2
    second = inspector.fit(shots, unlabelled=unlabelled, cache=cache)
    assert (second.features_extracted, second.features_cached) == (0, 10)
    full = _inspector(backbone, config)
    full.fit(shots, unlabelled=unlabelled)
    assert_same_model(inspector, full, held_out)


def test_another_configuration_or_backbone_does_not_reuse_features(data, backbone):
    from defectkit.inspect.backbones import create_backbone

    by, _ = data
    shots = by["good"][:2] + by["scratch"][:2]
    cache = FeatureCache()
    _inspector(backbone).fit(shots, cache=cache)
    coarser = _inspector(backbone, InspectorConfig(bank_size=512, seed=0, pool_size=5))
    assert coarser.fit(shots, cache=cache).features_cached == 0
    # Same name and layers, other weights (randomly initialised: weights id "random").
    random = create_backbone("efficientnet_lite0", pretrained=False)
    assert _inspector(random).fit(shots, cache=cache).features_cached == 0
    # The original configuration still finds its own entries.
    assert _inspector(backbone).fit(shots, cache=cache).features_cached == 4


def test_a_shot_of_another_size_changes_the_tiles_so_everything_is_extracted(data, backbone):
    by, _ = data
    shots = by["good"][:2] + by["scratch"][:2]
    cache = FeatureCache()
    inspector = _inspector(backbone)
    first = inspector.fit(shots, cache=cache)
    large = make_synthetic(n_good=1, defects={}, size=(160, 160), seed=2, texture="fabric")
    report = inspector.fit(shots + large, cache=cache)
    assert report.tile_size != first.tile_size
    assert (report.features_extracted, report.features_cached) == (5, 0)


def test_a_corrupt_entry_on_disk_is_ignored_and_rewritten(data, backbone, tmp_path):
    by, held_out = data
    shots = by["good"][:2] + by["scratch"][:2]
    folder = tmp_path / "features"
    inspector = _inspector(backbone)
    inspector.fit(shots, cache=FeatureCache(folder))
    files = sorted(folder.glob(f"*{SUFFIX}"))
    assert len(files) == 4
    files[0].write_bytes(b"not an npz at all")
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated

    restarted = FeatureCache(folder)  # a new process: nothing in memory
    report = inspector.fit(shots, cache=restarted)
    assert restarted.stats.corrupt == 2
    assert (report.features_extracted, report.features_cached) == (2, 2)
    assert restarted.stats.disk_hits == 2

    again = FeatureCache(folder)
    assert inspector.fit(shots, cache=again).features_cached == 4 and again.stats.corrupt == 0
    full = _inspector(backbone)
    full.fit(shots)
    assert_same_model(inspector, full, held_out)
