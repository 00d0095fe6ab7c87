"""Saved inspectors carry the head, tiles and caption context; folders from other format
versions are refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from defectkit.errors import ModelFormatError
from defectkit.inspect import saved
from defectkit.inspect.inspector import Inspector, InspectorConfig


@pytest.fixture(scope="module")
def fitted():
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(64, 64), seed=3)
    support = [replace(s, note=f"{s.label} {s.key}") if s.label != "good" else s for s in samples]
    inspector = Inspector(InspectorConfig(augmentations=1, bank_size=64, tile_size=(64, 64)))
    inspector.fit(support)
    return inspector, [s.load_image() for s in samples]


def test_round_trip_keeps_shots_notes_and_outputs(fitted, tmp_path):
    inspector, images = fitted
    folder = saved.save_inspector(inspector, tmp_path / "m")
    config = json.loads((folder / saved.CONFIG_FILE).read_text())
    assert config["format_version"] == saved.FORMAT_VERSION == 4
    assert config["captions"]["shots"][2] == {"label": "scratch", "note": "scratch scratch_000"}
    assert config["tiles"] == inspector.model.tiles.to_dict() and config["tiles"]["size"] == [64, 64]
    assert {"bank", "defect_bank"} <= set(load_file(str(folder / saved.TENSORS_FILE)))
    loaded = saved.load_inspector(folder)
    assert loaded.caption_context == inspector.caption_context
    assert loaded.output_names == inspector.output_names
    assert loaded.model.tiles == inspector.model.tiles
    assert loaded.model.head.scoring == inspector.model.head.scoring
    assert loaded.thresholds == inspector.thresholds
    ours, theirs = inspector.raw(images), loaded.raw(images)
    assert ours.names == theirs.names
    for a, b in zip(ours.present(), theirs.present(), strict=True):
        torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(b))
    assert [r.caption for r in loaded.inspect(images)] == [r.caption for r in inspector.inspect(images)]


@pytest.mark.parametrize("version", [1, 2, 3, 5])
def test_other_versions_are_refused_with_refit(fitted, tmp_path, version):
    """1-3 hold heads of whole resized images (statistics, descriptors and references
    this head no longer computes), 5 is from the future: refit, don't guess."""
    folder = saved.save_inspector(fitted[0], tmp_path / f"v{version}")
    config = json.loads((folder / saved.CONFIG_FILE).read_text())
    config["format_version"] = version
    (folder / saved.CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=f"format version {version} is not supported.*refit"):
        saved.load_inspector(folder)
