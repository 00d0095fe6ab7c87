"""Captions from results built on exact synthetic masks: every statement checked against the truth.

The anomaly map here is the true mask (times a peak), so postprocess finds exactly the
defect's pixels; these tests check the caption code's geometry and wording, not the
inspector's localisation (see test_caption_inspector.py and benchmarks/caption_accuracy.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.datasets import angle_difference, make_synthetic
from defectkit.errors import ConfigError
from defectkit.fewshot import caption_text
from defectkit.fewshot.caption import (
    ELONGATED,
    cells_of,
    describe,
    major_axis_length,
    nearest_note,
    orientation_word,
    vocabulary_match,
)
from defectkit.fewshot.vocabulary import Vocabulary
from defectkit.inspect.results import Thresholds, postprocess

CLASSES = ("good", "crack", "hole", "missing", "scratch", "spot", "stain")
WORD_ANGLE = {"horizontal": 0.0, "rising": 45.0, "vertical": 90.0, "falling": 135.0}


def result_for(mask, label, *, p=0.9, score=2.5, threshold=1.3, amap=None, classes=CLASSES):
    """A defective result whose regions are exactly ``mask`` and whose class is ``label``."""
    probs = np.full(len(classes), (1.0 - p) / (len(classes) - 1))
    probs[classes.index(label)] = p
    amap = mask * 3.0 if amap is None else amap
    return postprocess(
        score, amap.astype(np.float32), np.log(probs), classes=classes,
        thresholds=Thresholds(threshold, 1.0, min_defect_area=4), image_size=mask.shape,
    )  # fmt: skip


@pytest.fixture(scope="module")
def defects():
    return make_synthetic(n_good=0, defects={k: 3 for k in CLASSES[1:]}, size=(192, 256), seed=5)


def test_every_statement_is_true_of_the_exact_mask(defects):
    for sample in defects:
        meta = sample.meta
        records, sentence = describe(result_for(sample.mask_array, sample.label), classes=CLASSES)
        (rec,) = records
        assert sentence == rec["sentence"] and sentence.startswith(
            sample.label.capitalize() + ", 90 %"
        )
        assert rec["type"] == sample.label and not rec["uncertain"]
        (true_cell,) = cells_of(*meta["centre"], 256, 192, margin=0.0)
        assert true_cell in rec["position"], (meta["id"], rec["position"])
        assert rec["area_px"] == meta["area_px"]  # exact mask: exact size
        assert rec["length_px"] == pytest.approx(major_axis_length(sample.mask_array), abs=0.01)
        elongated = meta["elongation"] >= ELONGATED
        assert (rec["shape"] != "compact") == elongated
        if elongated:
            assert angle_difference(rec["orientation_deg"], meta["orientation_deg"]) < 1e-6
            assert angle_difference(WORD_ANGLE[rec["orientation"]], meta["orientation_deg"]) <= 22.5
            # No image: the length is the region's, stated as a lower bound (a region cut
            # from an anomaly map may overshoot the defect by its blur).
            assert rec["length_estimate"] == "at_least" and rec["length_low_px"] <= rec["length_px"]
            assert f"at least {rec['length_low_px']:.0f} px long" in sentence
        else:
            assert rec["orientation"] is None and "compact" in sentence
            assert f"up to {meta['area_px']:,} px" in sentence
        assert "mm" not in sentence and "like the labelled example" not in sentence
        json.dumps(records)


def test_straight_scratch_length_and_words():
    mask = np.zeros((90, 120), bool)
    mask[70:72, 10:110] = True  # 100 x 2 px, horizontal, lower part
    (rec,), sentence = describe(result_for(mask, "scratch"), classes=CLASSES)
    assert rec["length_px"] == pytest.approx(100.0, abs=0.5)
    assert rec["shape"] == "thin" and rec["orientation"] == "horizontal"
    assert rec["position"] == ["lower-centre"]
    # Without the image the region's length is all there is: a lower bound.
    assert "lower centre, at least 80 px long, thin and horizontal" in sentence
    diagonal = np.eye(80, dtype=bool)  # down to the right on screen: falling
    (rec,), sentence = describe(result_for(diagonal, "scratch"), classes=CLASSES)
    assert rec["orientation"] == "falling" and "diagonal ↘" in sentence
    assert orientation_word(45.0) == "rising" and orientation_word(179.0) == "horizontal"


def test_millimetres_only_with_a_scale(defects):
    scratch = next(s for s in defects if s.label == "scratch")
    spot = next(s for s in defects if s.label == "spot")
    (rec,), sentence = describe(result_for(scratch.mask_array, "scratch"), classes=CLASSES)
    assert "mm" not in sentence and "length_mm" not in rec
    (rec,), sentence = describe(
        result_for(scratch.mask_array, "scratch"), classes=CLASSES, scale_mm_per_px=0.1
    )
    assert rec["length_mm"] == pytest.approx(rec["length_px"] * 0.1, abs=1e-3)
    assert rec["length_low_mm"] == pytest.approx(rec["length_low_px"] * 0.1, abs=1e-3)
    assert f"at least {rec['length_low_mm']:.1f} mm long" in sentence
    (rec,), sentence = describe(
        result_for(spot.mask_array, "spot"), classes=CLASSES, scale_mm_per_px=0.5
    )
    assert rec["diameter_mm"] == pytest.approx(np.sqrt(4 * rec["area_px"] / np.pi) * 0.5, abs=1e-2)
    assert "mm across" in sentence
    with pytest.raises(ConfigError):
        describe(result_for(spot.mask_array, "spot"), classes=CLASSES, scale_mm_per_px=0)


def test_percent_of_the_part():
    mask = np.zeros((100, 100), bool)
    mask[40:50, 40:50] = True
    part = np.zeros((100, 100), bool)
    part[:, :50] = True  # half the image is the part
    (whole,), _ = describe(result_for(mask, "spot"), classes=CLASSES)
    (half,), sentence = describe(result_for(mask, "spot"), classes=CLASSES, part_mask=part)
    assert whole["area_percent"] == pytest.approx(1.0)
    assert half["area_percent"] == pytest.approx(2.0)
    assert "(2.0 % of the part)" in sentence
    with pytest.raises(ConfigError):
        describe(result_for(mask, "spot"), classes=CLASSES, part_mask=part[:50])


def test_low_confidence_is_uncertain():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    (rec,), sentence = describe(result_for(mask, "hole", p=0.45), classes=CLASSES)
    assert rec["uncertain"] and sentence.startswith("Possibly hole (uncertain, 45 %)")
    (rec,), sentence = describe(
        result_for(mask, "hole", p=0.45), classes=CLASSES, uncertain_below=0.4
    )
    assert not rec["uncertain"] and sentence.startswith("Hole, 45 % confidence")


def test_region_nearer_the_good_shots_is_unclassified():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    classes = ("good", "hole", "spot")
    probs = np.array([0.97, 0.02, 0.01])  # anomalous by score, "good" by the class head
    r = postprocess(2.0, mask * 3.0, np.log(probs), classes=classes,
                    thresholds=Thresholds(1.3, 1.0), image_size=(64, 64))  # fmt: skip
    (rec,), sentence = describe(r, classes=classes)
    assert rec["type"] == "hole" and rec["nearer_good"] and rec["uncertain"]
    assert sentence.startswith("Unclassified anomaly (nearest defect class: hole, 2 %), upper left")


def test_good_part():
    r = postprocess(0.42, np.zeros((8, 8), np.float32), np.array([3.0, 0.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(32, 32))  # fmt: skip
    assert describe(r, classes=("good", "dent")) == (
        [],
        "No defect found (score 0.42, threshold 1.30).",
    )


def test_several_regions_most_severe_first_and_weak_ones_unstated():
    amap = np.zeros((96, 96), np.float32)
    amap[5:15, 5:15] = 2.0  # peak 2.0 >= 1.5 x threshold 1.3: stated, "possibly"
    amap[60:80, 60:80] = 4.0  # the most severe: first
    amap[5:12, 80:90] = 1.6  # above the image threshold, but barely: not stated
    records, sentence = describe(result_for(amap > 0, "stain", amap=amap), classes=CLASSES)
    assert [r["position"] for r in records] == [["lower-right"], ["upper-left"], ["upper-right"]]
    assert [r["stated"] for r in records] == [True, True, False]
    assert records[2]["sentence"] is None
    assert sentence.startswith("Stain, 90 % confidence, lower right")
    assert (
        "Another region, possibly stain, upper left" in sentence and "upper right" not in sentence
    )
    assert records[1]["note"] is None and not records[1]["classified"]


def test_defect_without_region_is_not_localised():
    r = postprocess(2.0, np.zeros((8, 8), np.float32), np.array([0.0, 2.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(32, 32))  # fmt: skip
    (rec,), sentence = describe(r, classes=("good", "dent"))
    assert not rec["localised"] and "position" not in rec
    assert sentence.startswith("Dent, ") and "not localised" in sentence


def test_anomaly_without_defect_classes_states_no_confidence():
    mask = np.zeros((64, 64), bool)
    mask[30:40, 30:40] = True
    r = postprocess(3.0, mask * 3.0, np.array([0.0]), classes=("good",),
                    thresholds=Thresholds(1.3, 1.0), image_size=(64, 64))  # fmt: skip
    (rec,), sentence = describe(r, classes=("good",))
    assert rec["confidence"] is None and sentence.startswith("Anomaly, centre,")
    assert "%" in sentence  # the part percentage only
    assert "confidence" not in sentence


def test_notes_only_from_the_stated_class():
    labels = ["good", "scratch", "scratch", "spot"]
    notes = [None, "hairline scratch from the gripper", None, "oil droplet"]
    # The nearest shot overall is the spot, the nearest scratch shot has no note.
    sims = [-9.0, -5.0, -1.0, -0.5]
    assert nearest_note(sims, labels, notes, "scratch") == {
        "text": "hairline scratch from the gripper", "shot": 1, "similarity": -5.0,
    }  # fmt: skip
    assert nearest_note(sims, labels, notes, "crack") is None
    mask = np.zeros((64, 64), bool)
    mask[30:32, 5:60] = True
    book = {"labels": labels, "notes": notes, "similarity": sims}
    (rec,), sentence = describe(result_for(mask, "scratch"), classes=CLASSES, notes=book)
    assert sentence.endswith(" — like the labelled example 'hairline scratch from the gripper'.")
    (rec,), sentence = describe(result_for(mask, "crack"), classes=CLASSES, notes=book)
    assert rec["note"] is None and "labelled example" not in sentence
    with pytest.raises(ValueError):
        nearest_note(sims[:2], labels, notes, "scratch")


def test_border_cells_name_both_neighbours():
    assert cells_of(128.0, 128.0, 256, 256) == ["middle-centre"]
    assert cells_of(84.8, 128.0, 256, 256) == ["middle-left", "middle-centre"]  # x border at 85.3
    assert cells_of(84.8, 84.8, 256, 256) == [
        "upper-left", "upper-centre", "middle-left", "middle-centre",
    ]  # fmt: skip
    assert cells_of(84.8, 128.0, 256, 256, margin=0.0) == ["middle-left"]


def test_vocabulary_terms_only_with_scores():
    vocab = Vocabulary(("scratch", "crack"), ("dark",))
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    result = result_for(mask, "crack")
    _, without = describe(result, classes=CLASSES, vocabulary=vocab)
    assert "image-text" not in without
    (rec,), sentence = describe(
        result, classes=CLASSES, vocab_scores=[0.20, 0.26, 0.3], vocabulary=vocab
    )
    assert rec["vocabulary"]["term"] == "crack" and rec["vocabulary"]["attribute"] == "dark"
    assert "image-text match 'crack', 'dark'" in sentence
    # A near tie is not a statement: no term reaches half the share.
    three = Vocabulary(("scratch", "crack", "dent"), ("dark",))
    close = vocabulary_match([0.250, 0.251, 0.2505, 0.3], list(three))
    assert close["term"] is None and close["attribute"] == "dark"
    with pytest.raises(ValueError):
        vocabulary_match([0.1, 0.2], vocab)


def test_a_translation_changes_only_the_words(monkeypatch):
    pseudo = dict(
        caption_text.EN, no_defect="Kein Fehler (Wert {score:.2f}, Schwelle {threshold:.2f})."
    )
    monkeypatch.setitem(caption_text.LANGUAGES, "de", pseudo)
    r = postprocess(0.5, np.zeros((4, 4), np.float32), np.array([1.0, 0.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(8, 8))  # fmt: skip
    assert (
        describe(r, classes=("good", "dent"), language="de")[1]
        == "Kein Fehler (Wert 0.50, Schwelle 1.30)."
    )
    with pytest.raises(ConfigError):
        describe(r, classes=("good", "dent"), language="xx")


def test_a_sharp_thin_defect_is_measured_on_its_pixels_not_its_blurred_region():
    """The map blurs a short crack into a blob; the image's pixels still show a line."""
    from scipy import ndimage

    line = np.zeros((128, 128), bool)
    for i in range(40):  # a 40-px falling diagonal, 2 px thick
        line[44 + i, 44 + i : 46 + i] = True
    region = ndimage.binary_dilation(line, iterations=14)  # what the map's region looks like
    image = np.full((128, 128, 3), 150, np.uint8)
    image[line] = 40

    def caption(img):
        result = postprocess(
            2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES, thresholds=Thresholds(1.3, 1.0),
            image_size=region.shape, image=img,
        )  # fmt: skip
        return describe(result, classes=CLASSES)

    (rec,), sentence = caption(None)
    assert rec["shape"] != "thin" and rec["shape_from"] == "region"  # the blob
    assert "at least" in sentence or "compact" in sentence
    (rec,), sentence = caption(image)
    assert rec["shape_from"] == "pixels" and rec["shape"] == "thin"
    assert rec["orientation"] == "falling" and rec["length_estimate"] == "about"
    assert rec["length_px"] == pytest.approx(major_axis_length(line), rel=0.05)
    assert f"about {rec['length_px']:.0f} px long, thin and diagonal ↘" in sentence


def test_a_defect_running_past_its_region_is_not_given_an_estimated_length():
    """A line that the map's region cuts off (its faint end fell below the threshold):
    the pixels inside the region reach its edge, so their length is only a lower bound."""
    from scipy import ndimage

    line = np.zeros((128, 128), bool)
    line[63:65, 20:108] = True  # 88 px long, 2 px thick
    region = ndimage.binary_dilation(line, iterations=12)
    region[:, 70:] = False  # the region covers the left part only: ~62 of the 88 px
    image = np.full((128, 128, 3), 150, np.uint8)
    image[line] = 40
    result = postprocess(
        2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
        thresholds=Thresholds(1.3, 1.0), image_size=region.shape, image=image,
    )  # fmt: skip
    (rec,), sentence = describe(result, classes=CLASSES)
    assert rec["shape_from"] == "pixels" and rec["orientation"] == "horizontal"
    assert rec["length_estimate"] == "at_least" and "about" not in sentence
    assert rec["length_low_px"] <= major_axis_length(line)  # a true lower bound
    assert f"at least {rec['length_low_px']:.0f} px long" in sentence

    inside = region.copy()  # the same line wholly inside its region: an estimate
    inside[:, 70:] = ndimage.binary_dilation(line, iterations=12)[:, 70:]
    result = postprocess(
        2.5, inside * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
        thresholds=Thresholds(1.3, 1.0), image_size=region.shape, image=image,
    )  # fmt: skip
    (rec,), sentence = describe(result, classes=CLASSES)
    assert rec["length_estimate"] == "about"
    assert rec["length_px"] == pytest.approx(major_axis_length(line), rel=0.05)


def test_a_soft_edged_line_in_a_round_region_is_not_called_compact():
    """A faint crack with a soft halo: the map's region is a round blob and the edge too
    soft for an area estimate, but the seeds (surely the defect's) form a line."""
    from scipy import ndimage

    from defectkit.fewshot.caption import CORE_MIN_PX

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    region = (yy - 64) ** 2 + (xx - 64) ** 2 <= 40**2  # round: elongation ~1

    def caption(length):
        line = np.zeros((128, 128), bool)
        line[63:65, 64 - length // 2 : 64 + length // 2] = True
        halo = ndimage.binary_dilation(line, iterations=6) & ~line
        image = 150.0 + rng.normal(0.0, 5.0, (128, 128))
        image[line] -= 60.0  # far beyond the seeds' bar
        image[halo] -= 12.0  # between the weak and the conservative bars: a soft edge
        image = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
        result = postprocess(
            2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
            thresholds=Thresholds(1.3, 1.0), image_size=region.shape, image=image,
        )  # fmt: skip
        (rec,), sentence = describe(result, classes=CLASSES)
        return rec, sentence, line

    rec, sentence, line = caption(60)
    assert rec["shape_from"] == "core" and rec["shape"] == "thin"
    assert rec["orientation"] == "horizontal" and rec["length_estimate"] == "at_least"
    assert rec["length_low_px"] <= major_axis_length(line)  # a lower bound
    assert "compact" not in sentence and "about" not in sentence

    rec, sentence, line = caption(8)  # too few seed pixels to call a shape
    assert line.sum() < CORE_MIN_PX
    assert rec["shape_from"] == "region" and rec["shape"] == "compact"
