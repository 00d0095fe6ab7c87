"""Atomic writes and the JSON records."""

from __future__ import annotations

import os

import pytest

from defectkit.apps.labelling import storage
from defectkit.apps.labelling.records import (
    FitRecord,
    ImageRecord,
    ImportReport,
    check_class_name,
    safe_stem,
)


def test_write_bytes_replaces_atomically_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.json"
    storage.write_json(target, {"a": 1})
    storage.write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    storage.write_bytes(target, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        storage.write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_file_and_cleanup(tmp_path):
    with storage.atomic_file(tmp_path / "a.zip") as tmp:
        tmp.write_bytes(b"zip")
        assert not (tmp_path / "a.zip").exists()
    assert (tmp_path / "a.zip").read_bytes() == b"zip"
    with pytest.raises(RuntimeError), storage.atomic_file(tmp_path / "b.zip") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert not (tmp_path / "b.zip").exists()
    (tmp_path / f"{storage.TMP_PREFIX}x").write_bytes(b"")
    assert (
        storage.remove_temporaries(tmp_path) == 1
        and storage.remove_temporaries(tmp_path / "no") == 0
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
