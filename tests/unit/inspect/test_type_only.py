"""Defect sorting (issue 16): shots of defect classes only give a type classifier.

No ``good`` shots, so nothing says what a good part looks like: results name a type and
say so (``mode == "type_only"``), never a verdict. The model saves, loads, exports and
runs torch-free like any other; the CLI fits and predicts with it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from defectkit.cli import main
from defectkit.datasets import make_synthetic, write_folder
from defectkit.errors import SupportSetError
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector

REPO = Path(__file__).resolve().parents[3]
KINDS = {"scratch": 4, "hole": 4}


@pytest.fixture(scope="module")
def samples():
    return make_synthetic(n_good=0, defects=KINDS, size=(96, 96), seed=31, texture="metal")


@pytest.fixture(scope="module")
def sorter(samples):
    shots = [s for s in samples if s.key.endswith(("_000", "_001"))]
    test = [s for s in samples if not s.key.endswith(("_000", "_001"))]
    assert len(test) == 4
    inspector = Inspector(InspectorConfig(seed=0))
    report = inspector.fit(shots)
    return inspector, report, test, shots


def _assert_type_only(results, labels=None):
    for r in results:
        assert r.mode == "type_only" and r.verdict is None and math.isnan(r.score)
        assert not r.mask.any() and r.defects == []
        record = json.loads(json.dumps(r.to_dict()))
        assert record["verdict"] is None and record["score"] is None and record["mode"] == "type_only"
        assert '"verdict": null' in json.dumps(r.to_dict())
    if labels is not None:
        assert [r.label for r in results] == labels


def test_a_fit_without_good_shots_sorts_defects_into_types(sorter):
    inspector, report, test, shots = sorter
    assert inspector.classes == ("hole", "scratch") and not inspector.model.has_verdict
    assert inspector.model.head.scoring is None and report.evidence is None
    assert report.good_scores == [] and report.defect_scores == {}
    assert inspector.output_names == ("features",)  # no bank to measure distances to
    results = inspector.inspect([s.load_image() for s in test])
    _assert_type_only(results)
    assert {r.label for r in results} <= set(KINDS)
    # The shots themselves are sorted into their own types.
    again = inspector.inspect([s.load_image() for s in shots])
    assert [r.label for r in again] == [s.label for s in shots] == ["scratch", "scratch", "hole", "hole"]


def test_held_out_defects_are_sorted_into_their_types(sorter):
    inspector, _, test, _ = sorter
    results = inspector.inspect([s.load_image() for s in test])
    correct = sum(r.label == s.label for s, r in zip(test, results, strict=True))
    assert correct >= 3, [(s.label, r.label) for s, r in zip(test, results, strict=True)]


def test_one_defect_class_without_good_is_refused(samples):
    with pytest.raises(SupportSetError, match="no 'good' shots"):
        Inspector(InspectorConfig(seed=0)).fit([s for s in samples if s.label == "hole"][:2])


def test_saves_loads_exports_and_runs_torch_free(sorter, tmp_path):
    from defectkit.exporters.export import export_bundle
    from defectkit.exporters.runtime import load_bundle

    inspector, _, test, _ = sorter
    images = [s.load_image() for s in test]
    expected = [r.label for r in inspector.inspect(images)]
    loaded = Inspector.load(inspector.save(tmp_path / "model"))
    assert json.loads((tmp_path / "model" / "config.json").read_text())["head"]["scoring"] is None
    _assert_type_only(loaded.inspect(images), expected)
    path = export_bundle(inspector, tmp_path / "bundle", target="onnx", check_images=images)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["mode"] == "type_only" and manifest["output_names"] == ["features"]
    assert manifest["selfcheck"]["passed"]
    bundle = load_bundle(path)
    assert bundle.mode == "type_only"
    _assert_type_only(bundle.inspect(images), expected)
    np.save(tmp_path / "images.npy", np.stack(images))
    out = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(path), str(tmp_path / "images.npy")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == expected


TORCH_FREE = """
import json, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from defectkit.exporters.runtime import load_bundle
bundle = load_bundle(sys.argv[1])
results = bundle.inspect(list(np.load(sys.argv[2])))
assert all(r.verdict is None and r.mode == "type_only" for r in results)
print(json.dumps([r.label for r in results]))
"""


def test_cli_fits_and_predicts_a_folder_without_good(samples, tmp_path, capsys):
    data = tmp_path / "parts"
    write_folder(list(samples), data)
    assert not (data / "good").exists()
    model = tmp_path / "model"
    capsys.readouterr()
    assert main(["fit", str(data), "-o", str(model), "--shots", "2"]) == 0
    assert "type-only" in capsys.readouterr().out
    meta = json.loads((model / "config.json").read_text())
    assert meta["support"]["shots_per_class"] == {"hole": 2, "scratch": 2}
    capsys.readouterr()
    assert main(["predict", str(model), str(data / "hole"), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == KINDS["hole"]
    for row in rows:
        assert row["mode"] == "type_only" and row["verdict"] is None and row["score"] is None
        assert row["label"] in ("hole", "scratch")
    assert main(["predict", str(model), str(data / "scratch")]) == 0
    for line in capsys.readouterr().out.splitlines():  # path, verdict, label, score
        _, verdict, label, score = line.split("\t")
        assert (verdict, score) == ("-", "-") and label in ("hole", "scratch")
    capsys.readouterr()
    assert main(["eval", str(model), str(data), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    # No verdict: nothing about scores, maps or good-vs-defect is reported, only types.
    assert measured["mode"] == "type_only"
    assert measured["image_auroc"] is None and measured["pixel_auroc"] is None and measured["binary_accuracy"] is None
    assert 0.0 <= measured["accuracy"] <= 1.0
