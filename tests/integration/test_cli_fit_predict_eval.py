"""The ``inspect`` CLI end to end on a folder dataset, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from defectkit.cli import main
from defectkit.datasets import make_synthetic, write_folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "parts"
    samples = make_synthetic(n_good=6, defects={"scratch": 4, "spot": 4}, size=(96, 96), seed=5)
    write_folder(samples, root)
    return root


@pytest.fixture(scope="module")
def model(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model"
    assert main(["fit", str(dataset), "-o", str(out), "--shots", "2", "--augmentations", "1", "--bank-size", "256"]) == 0
    return out


def test_fit_writes_a_model_folder(model):
    assert (model / "config.json").is_file() and (model / "heads.safetensors").is_file()
    meta = json.loads((model / "config.json").read_text())
    assert meta["support"]["shots_per_class"] == {"good": 2, "scratch": 2, "spot": 2}


def test_predict_json_lines_and_overlays(model, dataset, tmp_path, capsys):
    capsys.readouterr()
    assert main(["predict", str(model), str(dataset / "scratch"), "--json", "--save-overlays", str(tmp_path / "ov")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4
    for rec in lines:
        assert {"path", "score", "verdict", "label", "probabilities"} <= set(rec)
    assert len(list((tmp_path / "ov").glob("*.png"))) == 4


def test_eval_json_and_report(model, dataset, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(model), str(dataset), "--json", "--report", str(tmp_path / "rep")]) == 0
    m = json.loads(capsys.readouterr().out)
    for key in ("image_auroc", "pixel_auroc", "aupro", "accuracy", "balanced_accuracy", "macro_f1", "per_class", "n_images"):
        assert key in m
    assert m["n_images"] == 14 - 6  # the six fitted shots are left out
    assert m["pixel_auroc"] is not None and m["pixel_auroc"] > 0.8
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "<svg" in html and "Confusion matrix" in html and "images/00.png" in html


def _one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("inspect: error:"), err
    assert "Traceback" not in err
    return err


def test_user_errors_are_one_line_exit_2(dataset, model, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert "unknown backbone" in _one_line_error(capsys, ["fit", str(dataset), "-o", out, "--backbone", "resnet9000"]).lower()
    err = _one_line_error(capsys, ["fit", str(dataset), "-o", out, "--backbone", "ViT-B-16"])
    assert "inspect weights fetch" in err
    assert "no such" in _one_line_error(capsys, ["fit", str(tmp_path / "nowhere"), "-o", out]).lower()
    assert not (tmp_path / "o").exists(), "nothing half-written"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    # a batch carries on past an unreadable image, names it, and exits 2 at the end
    capsys.readouterr()
    assert main(["predict", str(model), str(bad), str(dataset / "good"), "--json"]) == 2
    captured = capsys.readouterr()
    rows = [json.loads(x) for x in captured.out.splitlines()]
    assert rows[0]["path"] == str(bad) and "error" in rows[0] and len(rows) == 7
    assert "1 of 7 images could not be read" in captured.err
    (tmp_path / "empty_model").mkdir()
    assert "not a model folder" in _one_line_error(capsys, ["predict", str(tmp_path / "empty_model"), str(bad)])
    assert "--bank-size" in _one_line_error(capsys, ["fit", str(dataset), "-o", out, "--bank-size", "1"])


def test_fit_says_when_the_labelled_threshold_is_too_strict_for_the_unlabelled_images(tmp_path, capsys):
    # One good part labelled twice: nothing left out differs from it, so the labelled
    # threshold would reject nearly every line image; the images then judge each other
    # and the fit says why (the same situation as the unlabelled-fit unit test).
    from PIL import Image

    samples = make_synthetic(n_good=12, defects={"scratch": 3, "spot": 3}, size=(96, 96), seed=5, texture="metal")
    goods = [s for s in samples if s.label == "good"]
    defects = [s for s in samples if s.label != "good"]
    data, line = tmp_path / "data", tmp_path / "line"
    for name, sample in [("good/a.png", goods[0]), ("good/b.png", goods[0])] + [
        (f"{s.label}/{s.key}.png", s) for s in defects if s.key.endswith(("_000", "_001"))
    ]:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample.load_image()).save(data / name)
    line.mkdir()
    for s in goods[2:] + [d for d in defects if d.key.endswith("_002")]:
        Image.fromarray(s.load_image()).save(line / f"{s.key}.png")
    capsys.readouterr()
    assert main(["fit", str(data), "-o", str(tmp_path / "m"), "--unlabelled", str(line), "--bank-size", "512"]) == 0
    out = capsys.readouterr().out
    assert "12 unlabelled" in out and "too strict" in out and "near-identical" in out, out


def test_fit_leaves_out_a_frame_every_image_has_and_says_so(tmp_path, capsys):
    # A scanner's 1-px white frame on the bottom and right edges of every image (as the
    # packaged textile set has): not the part, so it is left out and the fit says so.
    from PIL import Image

    samples = make_synthetic(n_good=2, defects={"spot": 2}, size=(96, 128), seed=6, texture="fabric")
    for s in samples:
        image = s.load_image().copy()
        image[-1, :] = image[:, -1] = 252
        (tmp_path / "data" / s.label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "data" / s.label / f"{s.key}.png")
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "data"), "-o", str(tmp_path / "m"), "--bank-size", "256"]) == 0
    out = capsys.readouterr().out
    assert "left out the frame every image has (1 px on the right and bottom edges)" in out, out
    assert "--roi sets the region yourself" in out


def test_fit_says_which_evidence_it_kept_and_follows_the_flag(dataset, tmp_path, capsys):
    from defectkit.inspect.inspector import Inspector

    base = ["--shots", "2", "--augmentations", "1", "--bank-size", "256"]
    for flag in ("auto", "contrast", "distance"):
        out = tmp_path / flag
        capsys.readouterr()
        assert main(["fit", str(dataset), "-o", str(out), *base, "--evidence", flag]) == 0
        said = capsys.readouterr().out
        kept = Inspector.load(out).model.head.scoring.evidence
        if flag == "auto":
            assert f"evidence {kept}" in said and "chosen on the shots" in said
        else:
            assert kept == flag and f"evidence {flag}" in said and "as --evidence set" in said
