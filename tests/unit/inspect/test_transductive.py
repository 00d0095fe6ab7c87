"""inspect predict --transductive: a batch scored against the fitted state and itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.cli import main
from defectkit.errors import ConfigError
from defectkit.inspect.transductive import inspect_transductive


def test_the_batch_only_lowers_distances_and_keeps_the_defects(fitted, synthetic):
    inspector, _ = fitted
    test = synthetic[1]
    images = [s.load_image() for s in test]
    plain = inspector.inspect(images)
    batch = inspect_transductive(inspector, lambda i: images[i], len(images), [s.key for s in test])
    assert [r.path for r in batch] == [s.key for s in test]
    # Each patch's distance is the smaller of the bank's and the batch's: never higher.
    assert all(b.score <= p.score + 1e-6 for b, p in zip(batch, plain, strict=True))
    # The references are the fitted ones, so defects the model found are still found.
    found = [s for s, r in zip(test, plain, strict=True) if s.label != "good" and r.verdict == "defect"]
    assert found, "the fixture's model finds some defects"
    kept = [r.verdict for s, r in zip(test, batch, strict=True) if s in found]
    assert kept.count("defect") >= len(found) - 1, kept
    assert np.isfinite([r.score for r in batch]).all()


def test_refusals_are_clear(fitted):
    inspector, _ = fitted
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ConfigError, match="at least two"):
        inspect_transductive(inspector, lambda i: image, 1)


def test_cli_prints_one_line_per_image(fitted, synthetic, tmp_path, capsys):
    from PIL import Image

    inspector, _ = fitted
    model = inspector.save(tmp_path / "model")
    folder = tmp_path / "batch"
    folder.mkdir()
    for s in synthetic[1][:5]:
        Image.fromarray(s.load_image()).save(folder / f"{s.key}.png")
    capsys.readouterr()
    assert main(["predict", str(model), str(folder), "--transductive", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5 and all(r["verdict"] in ("good", "defect") for r in rows)
