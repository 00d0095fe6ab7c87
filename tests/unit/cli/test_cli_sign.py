"""``inspect export --sign KEY`` and ``inspect threshold --sign KEY``."""

import json

from defectkit.cli import main
from defectkit.core.files import sha256_file
from defectkit.exporters.bundle import FORMAT, FORMAT_VERSION, write_manifest
from defectkit.exporters.signing import generate_key_pair, load_trusted_key, verify_bundle


def small_bundle(folder):
    """A bundle folder in the real format (the model bytes are not run here)."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not really a model")
    write_manifest(folder, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "target": "onnx", "precision": "fp32",
        "input_size": [64, 64], "input_name": "image", "output_names": ["score"],
        "classes": ["good", "scratch"], "thresholds": {"image": 0.5, "pixel": 0.6, "min_defect_area": 4},
        "files": {"model.onnx": sha256_file(folder / "model.onnx")},
    })  # fmt: skip
    return folder


def test_moving_a_threshold_and_signing_again(tmp_path, capsys):
    key, pub = generate_key_pair(tmp_path / "lab")
    bundle = small_bundle(tmp_path / "bundle")
    trusted = [load_trusted_key(pub)]
    assert main(["threshold", str(bundle), "--sign", str(key)]) == 0
    verify_bundle(bundle, trusted)
    assert main(["threshold", str(bundle), "--image", "0.7", "--sign", str(key)]) == 0
    assert "signed" in capsys.readouterr().out
    assert verify_bundle(bundle, trusted).manifest["thresholds"]["image"] == 0.7


def test_a_bad_key_fails_before_the_export_starts(tmp_path, capsys, monkeypatch):
    import defectkit.inspect.inspector as inspector

    monkeypatch.setattr(inspector.Inspector, "load", lambda *a: (_ for _ in ()).throw(AssertionError("loaded")))
    missing = tmp_path / "missing.key"
    code = main(["export", str(tmp_path / "model"), "--target", "onnx", "-o", str(tmp_path / "b"),
                 "--sign", str(missing)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and err.count("\n") == 1


def test_export_signs_the_bundle_it_wrote(tmp_path, capsys, monkeypatch):
    import defectkit.exporters.export as export
    import defectkit.inspect.inspector as inspector

    key, pub = generate_key_pair(tmp_path / "lab")
    out = tmp_path / "bundle"

    def fake_export(model, output, **kwargs):
        small_bundle(out)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest |= {"fitted_input_size": [64, 64], "selfcheck": {
            "images": 1, "engine": "onnxruntime", "inference_precision": "f32", "device": "CPU",
            "score_max_rel": 0.0, "map_max_abs": 0.0, "logit_max_rel": 0.0, "argmax_agree": 1,
            "argmax_checked": 1}}  # fmt: skip
        write_manifest(out, manifest)
        return out

    monkeypatch.setattr(inspector.Inspector, "load", lambda path: object())
    monkeypatch.setattr(export, "export_bundle", fake_export)
    assert main(["export", "m", "--target", "onnx", "-o", str(out), "--sign", str(key)]) == 0
    assert f"signed {out}" in capsys.readouterr().out
    verify_bundle(out, [load_trusted_key(pub)])
