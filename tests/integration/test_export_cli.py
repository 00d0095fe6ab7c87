"""Whole flow on the command line: fit -> export -> predict on the bundle, same JSON as the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from defectkit.cli import main


def _write_dataset(root: Path) -> Path:
    from defectkit.datasets import make_synthetic

    for s in make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(128, 128), seed=0):
        folder = root / s.label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.load_image()).save(folder / f"{s.key}.png")
    return root


def _write_images(root: Path) -> Path:
    from defectkit.datasets import make_synthetic

    root.mkdir()
    for s in make_synthetic(n_good=2, defects={"scratch": 1, "spot": 1}, size=(100, 140), seed=3):
        Image.fromarray(s.load_image()).save(root / f"{s.key}.png")
    return root


def _predict(capsys, model: Path, images: Path, *extra: str) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", str(model), str(images), "--json", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _same_json(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in ("path", "verdict", "label", "threshold", "caption"):
        assert a[key] == b[key], key
    assert a["score"] == pytest.approx(b["score"], rel=1e-4)
    assert a["probabilities"].keys() == b["probabilities"].keys()
    for c, p in a["probabilities"].items():
        assert p == pytest.approx(b["probabilities"][c], abs=1e-4)
    assert len(a["defects"]) == len(b["defects"])
    for da, db in zip(a["defects"], b["defects"], strict=True):  # edges may move a pixel
        assert ("box" in da) == ("box" in db)  # a defective image may have no region
        if "box" in da:
            assert max(abs(u - v) for u, v in zip(da["box"], db["box"], strict=True)) <= 2
    assert a["timings_ms"].keys() == b["timings_ms"].keys()


def test_fit_export_predict_round_trip(tmp_path, capsys):
    data = _write_dataset(tmp_path / "data")
    images = _write_images(tmp_path / "images")
    model, bundle = tmp_path / "model", tmp_path / "bundle"
    assert (
        main(
            [
                "fit",
                str(data),
                "-o",
                str(model),
                "--augmentations",
                "1",
                "--bank-size",
                "256",
                "--tile-size",
                "128",
                "128",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "export",
                str(model),
                "--target",
                "openvino",
                "-o",
                str(bundle),
                "--check-images",
                str(data / "good"),
                str(data / "scratch"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "self-check on 16 images" in out and "passed" in out  # 4 shots + 12 variants

    from_model = _predict(capsys, model, images)
    from_bundle = _predict(capsys, bundle, images)
    assert len(from_model) == len(from_bundle) == 4
    for a, b in zip(from_model, from_bundle, strict=True):
        _same_json(a, b)

    # --threshold works the same on both
    for a, b in zip(
        _predict(capsys, model, images, "--threshold", "-1"),
        _predict(capsys, bundle, images, "--threshold", "-1"),
        strict=True,
    ):
        assert a["verdict"] == b["verdict"] == "defect"

    # thresholds move on disk without re-export
    assert main(["threshold", str(bundle), "--image", "1e9"]) == 0
    assert "image 1e+09" in capsys.readouterr().out
    assert {r["verdict"] for r in _predict(capsys, bundle, images)} == {"good"}


def test_cli_errors_are_one_line(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{broken")
    assert main(["predict", str(bundle), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inspect: error:") and "not valid JSON" in err and "\n" not in err
    assert main(["threshold", str(tmp_path / "missing")]) == 2
    assert "no such bundle folder" in capsys.readouterr().err
    assert (
        main(["export", str(tmp_path / "missing"), "--target", "onnx", "-o", str(tmp_path / "o")])
        == 2
    )
    assert "no such model folder" in capsys.readouterr().err
