import pytest

from defectkit.datasets import Sample, make_synthetic
from defectkit.errors import SupportSetError
from defectkit.fewshot.calibration import NO_DEFECT_MARGIN, calibrate_threshold
from defectkit.fewshot.support import SupportSet, pick_shots


def test_threshold_separable_is_midpoint():
    assert calibrate_threshold([1.0, 0.8], [3.0, 2.0]) == pytest.approx(1.5)


def test_threshold_without_defects_adds_margin():
    assert calibrate_threshold([1.0, 0.9]) == pytest.approx(1.0 + NO_DEFECT_MARGIN)


def test_threshold_overlap_maximises_balanced_accuracy():
    good, bad = [1.0, 0.5, 2.5], [2.0, 3.0, 4.0]
    thr = calibrate_threshold(good, bad)
    bacc = (sum(g < thr for g in good) / 3 + sum(b >= thr for b in bad) / 3) / 2
    assert bacc == pytest.approx((2 / 3 + 1) / 2)


def test_shots_that_cannot_tell_good_from_defect_keep_the_good_ones_below_the_threshold():
    # Two defect shots scoring among the good ones: every cut between them has the same
    # balanced accuracy; the lowest would reject every good part (bsdata seed 4 did).
    good, bad = [1.0, 0.985], [0.881, 0.993]
    thr = calibrate_threshold(good, bad)
    assert all(g < thr for g in good)


def test_support_needs_every_class_and_good_only_when_present():
    samples = make_synthetic(n_good=2, defects={"scratch": 1}, size=(64, 64), seed=0)
    support = SupportSet.from_samples(samples)
    assert support.classes == ("good", "scratch")
    # Without good shots the set is valid (defect sorting); the fit decides what it can do.
    assert SupportSet.from_samples([s for s in samples if s.label != "good"]).classes == ("scratch",)
    with pytest.raises(SupportSetError, match="'crack' has no labelled shots"):
        SupportSet.from_samples(samples, classes=["good", "scratch", "crack"])


def test_pick_shots_is_reproducible_and_disjoint():
    samples = make_synthetic(n_good=6, defects={"scratch": 4, "spot": 4}, size=(64, 64), seed=0)
    a, rest = pick_shots(samples, 2, seed=7)
    b, _ = pick_shots(samples, 2, seed=7)
    assert [s.key for s in a] == [s.key for s in b]
    assert {s.key for s in a}.isdisjoint({s.key for s in rest})
    assert sorted(s.label for s in a) == ["good", "good", "scratch", "scratch", "spot", "spot"]
    with pytest.raises(SupportSetError):
        pick_shots(samples, 0)


def test_summary_names_files_by_unique_key(tmp_path):
    s = Sample(label="good", path=tmp_path / "a.png", meta={"id": "good/a.png"})
    t = Sample(label="dent", path=tmp_path / "b.png", note="from the press")
    summary = SupportSet.from_samples([s, t]).summary()
    assert summary["files"] == ["good/a.png", (tmp_path / "b.png").as_posix()]
    assert summary["with_note"] == 1
