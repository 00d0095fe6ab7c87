"""Captions from results built on exact synthetic masks: every statement checked against the truth.

The anomaly map here is the true mask (times a peak), so ``decide`` finds exactly the
defect's pixels; these tests check the caption code's geometry and wording, not the
inspector's localisation (see tests/unit/inspect/test_captions.py and
benchmarks/caption_accuracy.py). Records are checked in their JSON form (``to_dict``),
the form the CLI, the daemon and the results store write.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectkit.core.caption import CaptionContext, describe
from defectkit.core.caption import text as caption_text
from defectkit.core.caption.evidence import nearest_note, vocabulary_match
from defectkit.core.caption.geometry import (
    ELONGATED,
    cells_of,
    major_axis_length,
    orientation_word,
)
from defectkit.core.caption.vocabulary import Vocabulary
from defectkit.core.decide import decide
from defectkit.core.results import NoteMatch, RawOutputs, Thresholds
from defectkit.datasets import angle_difference, make_synthetic
from defectkit.errors import ConfigError

CLASSES = ("good", "crack", "hole", "missing", "scratch", "spot", "stain")
WORD_ANGLE = {"horizontal": 0.0, "rising": 45.0, "vertical": 90.0, "falling": 135.0}


def decided(score, amap, logits, *, classes, thresholds, image_size=None):
    """The decision on one image's raw outputs (no caption evidence)."""
    raw = RawOutputs(score, np.asarray(amap, np.float32), np.asarray(logits), np.zeros(0))
    return decide(raw, thresholds, classes, image_size=image_size)


def result_for(mask, label, *, p=0.9, score=2.5, threshold=1.3, amap=None, classes=CLASSES):
    """A defective decision whose regions are exactly ``mask`` and whose class is ``label``."""
    probs = np.full(len(classes), (1.0 - p) / (len(classes) - 1))
    probs[classes.index(label)] = p
    amap = mask * 3.0 if amap is None else amap
    return decided(
        score, amap, np.log(probs), classes=classes,
        thresholds=Thresholds(threshold, 1.0, min_defect_area=4), image_size=mask.shape,
    )  # fmt: skip


def caption(decision, raw=None, context=None, image=None, **options):
    """``describe``, its records as the JSON the CLI writes."""
    records, sentence = describe(decision, raw, context, image, **options)
    return [r.to_dict() for r in records], sentence


def evidence(similarity=(), vocab_scores=None):
    """Raw outputs carrying only caption evidence (all ``describe`` reads of them)."""
    return RawOutputs(0.0, None, None, np.asarray(similarity, np.float32), vocab_scores)


@pytest.fixture(scope="module")
def defects():
    return make_synthetic(n_good=0, defects={k: 3 for k in CLASSES[1:]}, size=(192, 256), seed=5)


def test_every_statement_is_true_of_the_exact_mask(defects):
    for sample in defects:
        meta = sample.meta
        records, sentence = caption(result_for(sample.mask_array, sample.label))
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
    (rec,), sentence = caption(result_for(mask, "scratch"))
    assert rec["length_px"] == pytest.approx(100.0, abs=0.5)
    assert rec["shape"] == "thin" and rec["orientation"] == "horizontal"
    assert rec["position"] == ["lower-centre"]
    # Without the image the region's length is all there is: a lower bound.
    assert "lower centre, at least 80 px long, thin and horizontal" in sentence
    diagonal = np.eye(80, dtype=bool)  # down to the right on screen: falling
    (rec,), sentence = caption(result_for(diagonal, "scratch"))
    assert rec["orientation"] == "falling" and "diagonal ↘" in sentence
    assert orientation_word(45.0) == "rising" and orientation_word(179.0) == "horizontal"


def test_millimetres_only_with_a_scale(defects):
    scratch = next(s for s in defects if s.label == "scratch")
    spot = next(s for s in defects if s.label == "spot")
    (rec,), sentence = caption(result_for(scratch.mask_array, "scratch"))
    assert "mm" not in sentence and "length_mm" not in rec
    (rec,), sentence = caption(result_for(scratch.mask_array, "scratch"), scale_mm_per_px=0.1
    )
    assert rec["length_mm"] == pytest.approx(rec["length_px"] * 0.1, abs=1e-3)
    assert rec["length_low_mm"] == pytest.approx(rec["length_low_px"] * 0.1, abs=1e-3)
    assert f"at least {rec['length_low_mm']:.1f} mm long" in sentence
    (rec,), sentence = caption(result_for(spot.mask_array, "spot"), scale_mm_per_px=0.5
    )
    assert rec["diameter_mm"] == pytest.approx(np.sqrt(4 * rec["area_px"] / np.pi) * 0.5, abs=1e-2)
    assert "mm across" in sentence
    with pytest.raises(ConfigError):
        caption(result_for(spot.mask_array, "spot"), scale_mm_per_px=0)


def test_percent_of_the_part():
    mask = np.zeros((100, 100), bool)
    mask[40:50, 40:50] = True
    part = np.zeros((100, 100), bool)
    part[:, :50] = True  # half the image is the part
    (whole,), _ = caption(result_for(mask, "spot"))
    (half,), sentence = caption(result_for(mask, "spot"), part_mask=part)
    assert whole["area_percent"] == pytest.approx(1.0)
    assert half["area_percent"] == pytest.approx(2.0)
    assert "(2.0 % of the part)" in sentence
    with pytest.raises(ConfigError):
        caption(result_for(mask, "spot"), part_mask=part[:50])


def test_low_confidence_is_uncertain():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    (rec,), sentence = caption(result_for(mask, "hole", p=0.45))
    assert rec["uncertain"] and sentence.startswith("Possibly hole (uncertain, 45 %)")
    (rec,), sentence = caption(result_for(mask, "hole", p=0.45), uncertain_below=0.4
    )
    assert not rec["uncertain"] and sentence.startswith("Hole, 45 % confidence")


def test_region_nearer_the_good_shots_is_the_nearest_type_hedged():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    classes = ("good", "hole", "spot")
    probs = np.array([0.97, 0.02, 0.01])  # anomalous by score, "good" by the class head
    r = decided(2.0, mask * 3.0, np.log(probs), classes=classes,
                    thresholds=Thresholds(1.3, 1.0), image_size=(64, 64))  # fmt: skip
    (rec,), sentence = caption(r)
    assert r.label == rec["type"] == "hole" and rec["nearer_good"] and rec["uncertain"]
    assert sentence.startswith(
        "Possibly hole (the nearest labelled type, 2 %; the class head finds it nearer the "
        "good shots), upper left"
    )


def test_good_part():
    r = decided(0.42, np.zeros((8, 8), np.float32), np.array([3.0, 0.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(32, 32))  # fmt: skip
    assert caption(r) == (
        [],
        "No defect found (score 0.42, threshold 1.30).",
    )


def test_several_regions_most_severe_first_and_weak_ones_unstated():
    amap = np.zeros((96, 96), np.float32)
    amap[5:15, 5:15] = 2.0  # peak 2.0 >= 1.5 x threshold 1.3: stated, "possibly"
    amap[60:80, 60:80] = 4.0  # the most severe: first
    amap[5:12, 80:90] = 1.6  # above the image threshold, but barely: not stated
    records, sentence = caption(result_for(amap > 0, "stain", amap=amap))
    assert [r["position"] for r in records] == [["lower-right"], ["upper-left"], ["upper-right"]]
    assert [r["stated"] for r in records] == [True, True, False]
    assert records[2]["sentence"] is None
    assert sentence.startswith("Stain, 90 % confidence, lower right")
    assert (
        "Another region, possibly stain, upper left" in sentence and "upper right" not in sentence
    )
    assert records[1]["note"] is None and not records[1]["classified"]


def test_defect_without_region_is_not_localised():
    r = decided(2.0, np.zeros((8, 8), np.float32), np.array([0.0, 2.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(32, 32))  # fmt: skip
    (rec,), sentence = caption(r)
    assert not rec["localised"] and "position" not in rec
    assert sentence.startswith("Dent, ") and "not localised" in sentence


def test_anomaly_without_defect_classes_states_no_confidence():
    mask = np.zeros((64, 64), bool)
    mask[30:40, 30:40] = True
    r = decided(3.0, mask * 3.0, np.array([0.0]), classes=("good",),
                    thresholds=Thresholds(1.3, 1.0), image_size=(64, 64))  # fmt: skip
    (rec,), sentence = caption(r)
    assert rec["confidence"] is None and sentence.startswith("Anomaly, centre,")
    assert "%" in sentence  # the part percentage only
    assert "confidence" not in sentence


def test_notes_only_from_the_stated_class():
    labels = ["good", "scratch", "scratch", "spot"]
    notes = [None, "hairline scratch from the gripper", None, "oil droplet"]
    # The nearest shot overall is the spot, the nearest scratch shot has no note.
    sims = [-9.0, -5.0, -1.0, -0.5]
    assert nearest_note(sims, labels, notes, "scratch") == NoteMatch(
        "hairline scratch from the gripper", shot=1, similarity=-5.0
    )
    assert nearest_note(sims, labels, notes, "crack") is None
    mask = np.zeros((64, 64), bool)
    mask[30:32, 5:60] = True
    book = CaptionContext(tuple(labels), tuple(notes))
    (rec,), sentence = caption(result_for(mask, "scratch"), evidence(sims), book)
    assert sentence.endswith(" — like the labelled example 'hairline scratch from the gripper'.")
    (rec,), sentence = caption(result_for(mask, "crack"), evidence(sims), book)
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
    context = CaptionContext(vocabulary=tuple(vocab))
    _, without = caption(result, evidence(), context)
    assert "image-text" not in without
    (rec,), sentence = caption(result, evidence(vocab_scores=np.array([0.20, 0.26, 0.3])), context)
    assert rec["vocabulary"]["term"] == "crack" and rec["vocabulary"]["attribute"] == "dark"
    assert "image-text match 'crack', 'dark'" in sentence
    # A near tie is not a statement: no term reaches half the share.
    three = Vocabulary(("scratch", "crack", "dent"), ("dark",))
    close = vocabulary_match([0.250, 0.251, 0.2505, 0.3], list(three))
    assert close.term is None and close.attribute == "dark"
    with pytest.raises(ValueError):
        vocabulary_match([0.1, 0.2], vocab)


def test_a_translation_changes_only_the_words(monkeypatch):
    pseudo = dict(
        caption_text.EN, no_defect="Kein Fehler (Wert {score:.2f}, Schwelle {threshold:.2f})."
    )
    monkeypatch.setitem(caption_text.LANGUAGES, "de", pseudo)
    r = decided(0.5, np.zeros((4, 4), np.float32), np.array([1.0, 0.0]), classes=("good", "dent"),
                    thresholds=Thresholds(1.3, 1.0), image_size=(8, 8))  # fmt: skip
    assert (
        caption(r, language="de")[1]
        == "Kein Fehler (Wert 0.50, Schwelle 1.30)."
    )
    with pytest.raises(ConfigError):
        caption(r, language="xx")


def test_a_sharp_thin_defect_is_measured_on_its_pixels_not_its_blurred_region():
    """The map blurs a short crack into a blob; the image's pixels still show a line."""
    from scipy import ndimage

    line = np.zeros((128, 128), bool)
    for i in range(40):  # a 40-px falling diagonal, 2 px thick
        line[44 + i, 44 + i : 46 + i] = True
    region = ndimage.binary_dilation(line, iterations=14)  # what the map's region looks like
    image = np.full((128, 128, 3), 150, np.uint8)
    image[line] = 40

    def caption_of(img):
        result = decided(
            2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
            thresholds=Thresholds(1.3, 1.0), image_size=region.shape,
        )  # fmt: skip
        return caption(result, image=img)

    (rec,), sentence = caption_of(None)
    assert rec["shape"] != "thin" and rec["shape_from"] == "region"  # the blob
    assert "at least" in sentence or "compact" in sentence
    (rec,), sentence = caption_of(image)
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
    result = decided(
        2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
        thresholds=Thresholds(1.3, 1.0), image_size=region.shape,
    )  # fmt: skip
    (rec,), sentence = caption(result, image=image)
    assert rec["shape_from"] == "pixels" and rec["orientation"] == "horizontal"
    assert rec["length_estimate"] == "at_least" and "about" not in sentence
    assert rec["length_low_px"] <= major_axis_length(line)  # a true lower bound
    assert f"at least {rec['length_low_px']:.0f} px long" in sentence

    inside = region.copy()  # the same line wholly inside its region: an estimate
    inside[:, 70:] = ndimage.binary_dilation(line, iterations=12)[:, 70:]
    result = decided(
        2.5, inside * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
        thresholds=Thresholds(1.3, 1.0), image_size=region.shape,
    )  # fmt: skip
    (rec,), sentence = caption(result, image=image)
    assert rec["length_estimate"] == "about"
    assert rec["length_px"] == pytest.approx(major_axis_length(line), rel=0.05)


def test_a_soft_edged_line_in_a_round_region_is_not_called_compact():
    """A faint crack with a soft halo: the map's region is a round blob and the edge too
    soft for an area estimate, but the seeds (surely the defect's) form a line."""
    from scipy import ndimage

    from defectkit.core.caption.geometry import CORE_MIN_PX

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    region = (yy - 64) ** 2 + (xx - 64) ** 2 <= 40**2  # round: elongation ~1

    def caption_of(length):
        line = np.zeros((128, 128), bool)
        line[63:65, 64 - length // 2 : 64 + length // 2] = True
        halo = ndimage.binary_dilation(line, iterations=6) & ~line
        image = 150.0 + rng.normal(0.0, 5.0, (128, 128))
        image[line] -= 60.0  # far beyond the seeds' bar
        image[halo] -= 12.0  # between the weak and the conservative bars: a soft edge
        image = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
        result = decided(
            2.5, region * 3.0, np.log([0.02, 0.88, 0.02, 0.02, 0.02, 0.02, 0.02]), classes=CLASSES,
            thresholds=Thresholds(1.3, 1.0), image_size=region.shape,
        )  # fmt: skip
        (rec,), sentence = caption(result, image=image)
        return rec, sentence, line

    rec, sentence, line = caption_of(60)
    assert rec["shape_from"] == "core" and rec["shape"] == "thin"
    assert rec["orientation"] == "horizontal" and rec["length_estimate"] == "at_least"
    assert rec["length_low_px"] <= major_axis_length(line)  # a lower bound
    assert "compact" not in sentence and "about" not in sentence

    rec, sentence, line = caption_of(8)  # too few seed pixels to call a shape
    assert line.sum() < CORE_MIN_PX
    assert rec["shape_from"] == "region" and rec["shape"] == "compact"
