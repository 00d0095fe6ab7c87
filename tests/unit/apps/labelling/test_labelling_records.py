"""The JSON records of a project and the rules for class names."""

from __future__ import annotations

from defectkit.apps.labelling.records import (
    FitRecord,
    ImageRecord,
    ImportReport,
    check_class_name,
    safe_stem,
)


def test_records_round_trip_and_ignore_unknown_keys():
    image = ImageRecord(
        id="a-1", file="images/a-1.png", name="a.png", sha256="x", width=3, height=4
    )
    assert ImageRecord.from_dict({**image.to_dict(), "future": 1}) == image
    fit = FitRecord(
        id="f", created="t", backbone="b", fingerprint="p", classes=["good"], shots={"good": 1},
        good_scores=[1.0], defect_scores={}, fitted_thresholds={"image": 2.0, "pixel": 1.0},
    )  # fmt: skip
    assert FitRecord.from_dict(fit.to_dict()) == fit
    assert fit.image_threshold == 2.0 and fit.model == "models/f"


def test_names():
    assert check_class_name(" missing_part ") == "missing_part"
    assert safe_stem("my photo (1).PNG") == "my_photo_1_PNG" and safe_stem("###") == "image"


def test_import_report_message():
    assert ImportReport().message() == "added 0 images"
    report = ImportReport(skipped=["a", "b", "c", "d"], errors=["x.png: broken"])
    assert report.message() == (
        "added 0 images; skipped 4 file(s) that are not images (a, b, c, ...). "
        "Could not read: x.png: broken"
    )
