"""The feature cache on its own: memory bound, disk entries, keys."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.errors import ConfigError
from defectkit.inspect import feature_cache
from defectkit.inspect.feature_cache import SUFFIX, FeatureCache, GridSource, image_key


def grid(value: float, shape=(4, 8, 8)) -> np.ndarray:
    return np.full(shape, value, np.float32)  # 4 * 8 * 8 * 4 = 1024 bytes


def test_memory_is_bounded_least_recently_used_first():
    cache = FeatureCache(max_bytes=3 * 1024)
    for name in "abc":
        cache.put(name, grid(ord(name)))
    cache.get("a")  # now b is the least recently used
    cache.put("d", grid(4.0))
    assert cache.nbytes == 3 * 1024 and len(cache) == 3
    assert cache.get("b") is None and cache.get("a") is not None
    cache.put("huge", grid(0.0, (4, 64, 64)))  # larger than the bound: not kept in memory
    assert cache.get("huge") is None and cache.nbytes <= 3 * 1024


def test_entries_are_copies_and_read_only():
    cache = FeatureCache()
    mine = grid(1.0)
    cache.put("k", mine)
    mine[:] = 5.0
    stored = cache.get("k")
    assert float(stored.max()) == 1.0 and not stored.flags.writeable
    source = GridSource(lambda image: grid(2.0), cache, "fp")
    image = np.zeros((8, 8, 3), np.uint8)
    first = source.grid(image)
    second = source.grid(image)  # a hit, handed out as a writable copy
    second[:] = 9.0
    assert float(source.grid(image).max()) == 2.0 and first.flags.writeable
    assert (source.extracted, source.cached) == (1, 2)


def test_disk_entries_survive_a_new_cache_and_unused_ones_are_pruned(tmp_path):
    folder = tmp_path / "features"
    cache = FeatureCache(folder)
    cache.put("a" * 64, grid(1.0))
    cache.put("b" * 64, grid(2.0))
    assert sorted(p.name for p in folder.iterdir()) == ["a" * 64 + SUFFIX, "b" * 64 + SUFFIX]

    later = FeatureCache(folder)
    assert float(later.get("b" * 64).max()) == 2.0 and later.stats.disk_hits == 1
    assert later.prune_unused() == 1  # "a" was not used by this cache
    assert [p.name for p in folder.iterdir()] == ["b" * 64 + SUFFIX]
    assert later.prune_unused() == 1 and not list(folder.iterdir())  # nothing used since


def test_the_folder_is_bounded_least_recently_used_first(tmp_path):
    import os
    import time

    entry = len(_npz_bytes(grid(0.0)))
    cache = FeatureCache(tmp_path, max_disk_bytes=2 * entry)
    past = time.time() - 100
    for i, key in enumerate(("a" * 64, "b" * 64)):
        cache.put(key, grid(float(i)))
        os.utime(tmp_path / (key + SUFFIX), (past + i, past + i))  # a older than b
    FeatureCache(tmp_path).get("a" * 64)  # read from disk: now the most recently used
    cache.put("c" * 64, grid(2.0))
    assert sorted(p.stem[0] for p in tmp_path.glob(f"*{SUFFIX}")) == ["a", "c"]
    assert cache.stats.disk_evicted == 1


def _npz_bytes(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, grid=array, key=np.array("a" * 64))
    return buffer.getvalue()


def test_an_entry_holding_another_key_is_corrupt_not_served(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put("a" * 64, grid(1.0))
    (tmp_path / ("a" * 64 + SUFFIX)).rename(tmp_path / ("c" * 64 + SUFFIX))  # a renamed file
    fresh = FeatureCache(tmp_path)
    assert fresh.get("c" * 64) is None and fresh.stats.corrupt == 1
    assert not (tmp_path / ("c" * 64 + SUFFIX)).exists()


def test_a_failing_disk_write_costs_time_not_the_fit(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(feature_cache, "write_atomic", full_disk)
    cache = FeatureCache(tmp_path)
    cache.put("k", grid(1.0))
    assert cache.stats.write_errors == 1 and cache.get("k") is not None  # still in memory


def test_leftover_temporaries_are_removed_and_bad_arguments_are_clear(tmp_path):
    from defectkit.core.files import TMP_PREFIX

    (tmp_path / f"{TMP_PREFIX}x.npz.123").write_bytes(b"half")
    FeatureCache(tmp_path)
    assert not list(tmp_path.iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        FeatureCache(tmp_path / "file")
    with pytest.raises(ConfigError, match="max_bytes"):
        FeatureCache(max_bytes=-1)
    with pytest.raises(ConfigError, match="max_disk_bytes"):
        FeatureCache(tmp_path, max_disk_bytes=-1)


def test_image_keys_differ_by_shape_dtype_and_fingerprint():
    image = np.zeros((4, 6, 3), np.uint8)
    keys = {
        image_key("fp", image),
        image_key("fp", image.reshape(6, 4, 3)),
        image_key("fp", image.astype(np.uint16)),
        image_key("other", image),
    }
    assert len(keys) == 4
    assert image_key("fp", image[:, ::-1]) == image_key("fp", np.ascontiguousarray(image[:, ::-1]))


def test_random_backbones_are_told_apart_by_their_tensors():
    import torch

    from defectkit.inspect.backbones import create_backbone
    from defectkit.inspect.feature_cache import features_fingerprint
    from defectkit.inspect.model import InspectorModel

    torch.manual_seed(0)
    one = InspectorModel(backbone=create_backbone("efficientnet_lite0", pretrained=False))
    torch.manual_seed(1)
    two = InspectorModel(backbone=create_backbone("efficientnet_lite0", pretrained=False))
    assert one.backbone.weights_id == two.backbone.weights_id == "random"
    assert features_fingerprint(one) != features_fingerprint(two)
    assert features_fingerprint(one) == features_fingerprint(one)
