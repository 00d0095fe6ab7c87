"""Overlays: heat on the anomalous region, boxes drawn, files named by content hash."""

import numpy as np

from defectkit.apps.daemon.overlay import OverlayWriter, render_overlay


def test_overlay_is_hot_where_the_map_is_high_and_boxes_are_drawn():
    image = np.full((40, 60, 3), 128, np.uint8)
    amap = np.zeros((10, 15), np.float32)
    amap[:, 10:] = 1.0  # right third anomalous
    out = np.asarray(render_overlay(image, amap, threshold=0.5, boxes=[[0, 0, 10, 10]]))
    assert out.shape == (40, 60, 3)
    assert out[20, 55, 0] > out[20, 55, 2], "anomalous side is tinted warm"
    assert out[20, 20].tolist() == [128, 128, 128], "calm side keeps the image"
    assert out[0, 5].tolist() == [0, 255, 128], "box outline"


def test_writer_names_files_by_hash_and_day(tmp_path):
    class Result:
        anomaly_map = np.zeros((4, 4), np.float32)
        threshold = 0.5
        boxes = []

    writer = OverlayWriter(tmp_path / "ov")
    path = writer.write(np.zeros((8, 8, 3), np.uint8), Result(), sha256="f" * 64, when=0.0)
    assert path == tmp_path / "ov" / "1970-01-01" / ("f" * 16 + ".png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_large_overlay_is_drawn_scaled_down_with_its_boxes():
    """Issue 17: a full-size overlay of an 8900 x 8900 image took 9.35 GB; overlays are
    drawn at most ``max_pixels`` (4 MP by default) with the boxes scaled along."""
    image = np.full((400, 300, 3), 128, np.uint8)
    amap = np.zeros((40, 30), np.float32)
    out = np.asarray(
        render_overlay(image, amap, threshold=0.5, boxes=[[0, 0, 100, 100]], max_pixels=30_000)
    )
    assert out.shape == (200, 150, 3), "scaled by sqrt(30,000 / 120,000) = 1/2"
    assert out[0, 25].tolist() == [0, 255, 128] and out[60, 25].tolist() == [128, 128, 128], (
        "the box's top edge is drawn and it ends at half its size"
    )
    small = np.asarray(render_overlay(image[:100, :100], amap, threshold=0.5))
    assert small.shape == (100, 100, 3), "images under the default cap keep their size"
