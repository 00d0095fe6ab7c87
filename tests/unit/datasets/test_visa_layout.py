"""VisA's split_csv layout, built tiny in tmp_path."""

from __future__ import annotations

import pytest

from defectkit.datasets import load_visa
from defectkit.errors import DatasetError

HEADER = "object,split,label,image,mask\n"


@pytest.fixture
def visa(tmp_path, image_file, mask_file):
    root = tmp_path / "visa"
    rows = [
        "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.JPG,pcb1/Data/Masks/Anomaly/000.png",
        "pcb1,test,normal,pcb1/Data/Images/Normal/0100.JPG,",
        "pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,",
        "candle,train,normal,candle/Data/Images/Normal/0836.JPG,",
        "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png",
    ]
    for row in rows:
        _, _, _, image, mask = row.split(",")
        image_file(root / image, shape=(20, 24))
        if mask:
            mask_file(root / mask, shape=(20, 24))
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text(HEADER + "\n".join(rows) + "\n")
    return root


def test_objects_sorted_train_first_labels_mapped(visa):
    samples = load_visa(visa)
    assert [(s.meta["category"], s.meta["split"], s.label) for s in samples] == [
        ("candle", "train", "good"),
        ("candle", "test", "anomaly"),
        ("pcb1", "train", "good"),
        ("pcb1", "test", "anomaly"),
        ("pcb1", "test", "good"),
    ]
    anomaly = samples[1]
    assert anomaly.key == "candle/Data/Images/Anomaly/001.JPG"
    assert anomaly.name == "001.JPG"
    assert anomaly.load_mask().shape == (20, 24)
    assert samples[0].mask_path is None


def test_category_and_split_filters(visa):
    samples = load_visa(visa, category="pcb1", split="test")
    assert [s.label for s in samples] == ["anomaly", "good"]
    with pytest.raises(DatasetError, match="no object 'fryum'; objects: candle, pcb1"):
        load_visa(visa, category="fryum")


def test_missing_split_file(tmp_path):
    with pytest.raises(DatasetError, match="no split_csv/1cls.csv"):
        load_visa(tmp_path)


def test_missing_column(visa):
    (visa / "split_csv" / "1cls.csv").write_text("object,split,image\npcb1,train,x.JPG\n")
    with pytest.raises(DatasetError, match="missing column.*label, mask"):
        load_visa(visa)


def test_bad_label_names_the_line(visa):
    path = visa / "split_csv" / "1cls.csv"
    path.write_text(path.read_text().replace("pcb1,train,normal", "pcb1,train,ok"))
    with pytest.raises(DatasetError, match="line 4: label 'ok'"):
        load_visa(visa)


def test_missing_image_is_reported_at_load(visa):
    (visa / "pcb1" / "Data" / "Images" / "Normal" / "0000.JPG").unlink()
    with pytest.raises(DatasetError, match="0000.JPG does not exist"):
        load_visa(visa)
    assert len(load_visa(visa, category="candle")) == 2  # other objects still load
