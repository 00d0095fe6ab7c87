"""VisA, read through its published split file (no re-arranging into MVTec folders).

::

    ROOT/split_csv/1cls.csv      object,split,label,image,mask
                                 candle,train,normal,candle/Data/Images/Normal/0836.JPG,
                                 candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png

Paths are relative to ``ROOT``. VisA labels anomalies only as "anomaly" (no defect
types), so labels are ``"good"`` and ``"anomaly"``. Every file the CSV names is checked
to exist up front: a partial copy should fail at load, not an hour into a benchmark.
"""

from __future__ import annotations

import csv
from pathlib import Path

from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample, check_split
from defectkit.errors import DatasetError

SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": GOOD, "anomaly": "anomaly"}


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise DatasetError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"expected the header {','.join(COLUMNS)}"
                )
            # Short rows read as None: make every field a stripped string.
            return [{c: (row.get(c) or "").strip() for c in COLUMNS} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read the split file ({exc})") from None


def _sample(root: Path, csv_path: Path, line: int, row: dict[str, str]) -> Sample:
    where = f"{csv_path}, line {line}"
    label = LABELS.get(row["label"])
    if label is None:
        raise DatasetError(f"{where}: label {row['label']!r} is neither 'normal' nor 'anomaly'")
    if not row["image"]:
        raise DatasetError(f"{where}: the image column is empty")
    image = root / row["image"]
    if not image.is_file():
        raise DatasetError(f"{where}: image {image} does not exist; is the copy complete?")
    mask = None
    if row["mask"]:
        mask = root / row["mask"]
        if not mask.is_file():
            raise DatasetError(f"{where}: mask {mask} does not exist; is the copy complete?")
    meta = {"id": row["image"], "category": row["object"], "split": row["split"]}
    return Sample(label=label, path=image, mask_path=mask, meta=meta)


def load_visa(
    root: str | Path, *, category: str | None = None, split: str | None = None
) -> list[Sample]:
    """List VisA samples from ``ROOT/split_csv/1cls.csv`` (images are read lazily).

    Args:
        root: the VisA folder (holding ``split_csv/`` and one folder per object).
        category: a VisA object such as ``"candle"``; ``None`` for all.
        split: ``"train"``, ``"test"`` or ``None`` for both.

    Returns:
        Samples ordered by object, then train before test, then CSV order; ``meta``
        holds ``id`` (the image path in the CSV), ``category`` and ``split``.
    """
    root = Path(root)
    csv_path = root / SPLIT_CSV
    if not csv_path.is_file():
        raise DatasetError(
            f"{root}: no {SPLIT_CSV.as_posix()}; point at the VisA folder that holds it "
            f"(header {','.join(COLUMNS)})"
        )
    splits = check_split(split)
    rows = [(line, row) for line, row in enumerate(_read_rows(csv_path), start=2)]
    objects = sorted({row["object"] for _, row in rows})
    if category is not None and category not in objects:
        raise DatasetError(
            f"{csv_path}: no object {category!r}; objects: {', '.join(objects) or 'none'}"
        )
    chosen = [
        (line, row)
        for line, row in rows
        if (category is None or row["object"] == category) and row["split"] in splits
    ]
    chosen.sort(key=lambda item: (item[1]["object"], splits.index(item[1]["split"])))
    samples = [_sample(root, csv_path, line, row) for line, row in chosen]
    if not samples:
        raise DatasetError(f"{csv_path}: no rows for split {split!r}; check the split column")
    return samples
