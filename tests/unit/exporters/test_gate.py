"""The regression gate: flips between two bundles on labelled images, judged by the label."""

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.base import Sample
from defectkit.errors import ConfigError
from defectkit.exporters.gate import Answer, GateReport, effect_of, is_right, run_gate
from defectkit.testing.daemon import load_fake_bundle, write_fake_bundle

# The test double's score is the mean brightness; its class head leans to "scratch" above 0.5.


def bundle(tmp_path, name, threshold):
    return load_fake_bundle(write_fake_bundle(tmp_path / name, threshold=threshold, tag=name))


def part(gray: int, label: str, n: int) -> Sample:
    return Sample(label=label, image_array=np.full((24, 32, 3), gray, np.uint8),
                  meta={"id": f"{label}/{n}.png"})  # fmt: skip


def test_right_means_verdict_and_class():
    assert is_right(Answer("good", "good", 0.1), "good")
    assert is_right(Answer("defect", "scratch", 0.9), "scratch")
    assert not is_right(Answer("defect", "dent", 0.9), "scratch")  # wrong class
    assert not is_right(Answer("good", "good", 0.4), "scratch")
    assert is_right(Answer(None, "scratch", 0.9), "scratch")  # type-only: class alone
    assert effect_of("good", Answer("defect", "x", 1), Answer("good", "good", 0)) == "regression"
    assert effect_of("good", Answer("good", "good", 0), Answer("defect", "x", 1)) == "fix"
    assert effect_of("good", Answer("good", "good", 0), Answer("good", "good", 0.2)) is None
    assert effect_of("good", Answer("defect", "x", 1), None) == "miss"


def test_a_lower_threshold_flips_a_good_part_and_blocks(tmp_path):
    old, new = bundle(tmp_path, "old", 0.5), bundle(tmp_path, "new", 0.4)
    samples = [part(115, "good", 0), part(20, "good", 1), part(230, "scratch", 2)]
    report = run_gate(new, samples, old=old, report_dir=tmp_path / "gate")
    (flip,) = report.flips
    assert (flip.image, flip.effect, flip.truth) == ("good/0.png", "regression", "good")
    assert (flip.old.verdict, flip.new.verdict) == ("good", "defect")
    assert not report.passed and report.blockers == [flip]
    assert "BLOCKED by 1" in report.summary() and "3 labelled images" in report.summary()
    for picture in flip.overlays:  # the new bundle's overlay, then the old one's
        assert Image.open(tmp_path / "gate" / picture).size == (32, 24)
    assert len(flip.overlays) == 2
    page = (tmp_path / "gate" / "index.html").read_text()
    assert "good/0.png" in page and flip.overlays[0] in page and "regression" in page
    again = GateReport.read(tmp_path / "gate")
    assert again.flips == report.flips and not again.passed


def test_a_fix_is_listed_but_does_not_block(tmp_path):
    old, new = bundle(tmp_path, "old", 0.5), bundle(tmp_path, "new", 0.6)
    report = run_gate(new, [part(140, "good", 0), part(20, "good", 1)], old=old)
    assert [f.effect for f in report.flips] == ["fix"] and report.passed


def test_without_an_old_bundle_every_mistake_is_a_miss(tmp_path):
    new = bundle(tmp_path, "new", 0.5)
    report = run_gate(new, [part(230, "good", 0), part(20, "good", 1), part(20, "scratch", 2)])
    assert [(f.image, f.effect) for f in report.flips] == [("good/0.png", "miss"),
                                                           ("scratch/2.png", "miss")]  # fmt: skip
    assert report.old_bundle is None and not report.passed


def test_no_images_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="labelled images"):
        run_gate(bundle(tmp_path, "new", 0.5), [])
