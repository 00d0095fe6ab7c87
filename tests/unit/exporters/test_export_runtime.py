"""The torch-free runtime's API: Bundle.inspect/raw, thresholds in memory, ids, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from defectkit.core.decide import REGION_FRACTION
from defectkit.errors import BundleError, ConfigError, ImageError
from defectkit.exporters.runtime import load_bundle

REPO = Path(__file__).resolve().parents[3]


def assert_same_boxes(ours: list, theirs: list, slack: int = 2) -> None:
    """Same regions; edges may move a pixel or two where the map crosses the threshold.
    A defect without a region (the image is defective, no pixel is) has no box in both."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.box is None) == (b.box is None), (a.box, b.box)
        if a.box is not None:
            assert np.abs(np.subtract(a.box, b.box)).max() <= slack, (a.box, b.box)


def test_bundle_exposes_what_the_inspector_does(onnx_bundle, fitted):
    inspector, _ = fitted
    bundle = load_bundle(onnx_bundle)
    assert bundle.classes == inspector.classes
    assert bundle.thresholds == inspector.thresholds
    assert bundle.input_size == inspector.input_size
    assert bundle.support_summary == inspector.support_summary
    assert bundle.manifest["target"] == "onnx"
    assert len(bundle.id) == 12 and bundle.id == load_bundle(onnx_bundle).id  # stable


def test_inspect_matches_the_pytorch_inspector(openvino_bundle, fitted, fresh_images):
    inspector, _ = fitted
    paths = [f"img{i}.png" for i in range(len(fresh_images))]
    ours = load_bundle(openvino_bundle).inspect(fresh_images, paths)
    theirs = inspector.inspect(fresh_images, paths)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.path, a.verdict, a.label) == (b.path, b.verdict, b.label)
        assert a.anomaly_map.shape == b.anomaly_map.shape == (96, 160)  # original size
        assert a.score == pytest.approx(b.score, rel=1e-4)
        assert_same_boxes(a.defects, b.defects)
        assert set(a.timings) == set(b.timings) == {"model"}


def test_notes_are_cited_from_the_nearest_shot_through_the_runtime(openvino_bundle, fitted, fresh_images):
    inspector, support = fitted
    bundle = load_bundle(openvino_bundle)
    context = bundle.caption_context
    assert context == inspector.caption_context
    assert context.shot_notes == (None, None, *(f"note on {c}_00{i}" for c in ("scratch", "spot") for i in (0, 1)))
    # Flipped defect shots: defective, near their own class, not identical to a shot.
    images = [np.ascontiguousarray(im[:, ::-1]) for im in support[2:]] + fresh_images
    sims = [r.prototype_similarity for r in bundle.raw_each(images)]  # two image sizes
    ours, theirs = bundle.inspect(images), inspector.inspect(images)
    cited = 0
    for row, a, b in zip(sims, ours, theirs, strict=True):
        def cited_shots(result):
            return [None if d.note is None else d.note.shot for d in result.defects]

        assert cited_shots(a) == cited_shots(b)  # the runtime cites what PyTorch cites
        if not a.is_defective or a.defects[0].nearer_good:
            assert all(d.note is None for d in a.defects)
            continue
        note = a.defects[0].note
        same_class = [i for i, label in enumerate(context.shot_labels) if label == a.label]
        assert note.shot == max(same_class, key=lambda i: row[i])  # nearest of its class
        assert note.text == context.shot_notes[note.shot] and note.text in a.caption
        cited += 1
    assert cited >= 2


def test_raw_shapes_for_batches(openvino_bundle, fresh_images):
    bundle = load_bundle(openvino_bundle)
    h, w = fresh_images[0].shape[:2]  # maps come back at the image's size, not the tile's
    assert (h, w) != bundle.input_size
    shots = len(bundle.caption_context.shot_labels)
    assert shots == 6
    for n in (0, 1, 3):
        score, amap, logits, sims, vocab = bundle.raw(fresh_images[:n])
        assert vocab is None
        assert score.shape == (n,) and amap.shape == ((n, h, w) if n else (0, 0, 0)) and logits.shape == (n, 3)
        assert sims.shape == (n, shots)
        assert score.dtype == amap.dtype == logits.dtype == sims.dtype == np.float32


def test_set_threshold_is_in_memory_only(onnx_bundle, fresh_images):
    bundle = load_bundle(onnx_bundle)
    before = bundle.thresholds
    bundle.set_threshold(image=1e9)
    assert {r.verdict for r in bundle.inspect(fresh_images)} == {"good"}
    bundle.set_threshold(image=-1e9, pixel=-1e9)
    results = bundle.inspect(fresh_images[:1])
    # Every pixel is above the pixel threshold: one region, cut at its own peak's fraction.
    amap = results[0].anomaly_map
    assert results[0].verdict == "defect" and results[0].defects
    np.testing.assert_array_equal(results[0].mask, amap >= REGION_FRACTION * amap.max())
    assert bundle.thresholds.min_defect_area == before.min_defect_area
    assert load_bundle(onnx_bundle).thresholds == before


def test_images_of_other_kinds_are_converted(onnx_bundle, fresh_images):
    bundle = load_bundle(onnx_bundle)
    rgb = fresh_images[0]
    gray16 = (rgb.mean(axis=2) * 257).astype(np.uint16)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    results = bundle.inspect([gray16, rgba, rgb.astype(np.float32) / 255])
    assert [r.anomaly_map.shape for r in results] == [rgb.shape[:2]] * 3
    assert results[1].score == pytest.approx(bundle.inspect([rgb])[0].score, rel=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32, 5), np.uint8),
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((2, 32, 32, 3), np.uint8),
    ],
)
def test_unusable_images_are_refused_clearly(onnx_bundle, bad):
    with pytest.raises(ImageError, match="image"):
        load_bundle(onnx_bundle).inspect([bad])


def test_engine_and_device_errors(onnx_bundle, openvino_bundle):
    with pytest.raises(ConfigError, match="engine='openvino' only"):
        load_bundle(openvino_bundle, engine="onnxruntime")
    with pytest.raises(ConfigError, match="unknown engine"):
        load_bundle(onnx_bundle, engine="tensorrt")
    with pytest.raises(BundleError, match="not available"):
        load_bundle(openvino_bundle, device="NPU")


@pytest.mark.parametrize("which", ["onnx_bundle", "openvino_bundle"])
def test_throughput_tuning_for_concurrent_callers_gives_the_same_outputs(request, which, fresh_images):
    import threading

    path = request.getfixturevalue(which)
    expected = load_bundle(path).raw(fresh_images[:2])
    tuned = load_bundle(path, streams=2)
    got: dict[int, tuple] = {}

    def call(k: int) -> None:  # two callers at once, as the daemon's workers do
        got[k] = tuned.raw(fresh_images[:2])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for outputs in got.values():
        assert outputs.names == expected.names
        for a, b in zip(outputs.present(), expected.present(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="streams must be at least 1"):
        load_bundle(path, streams=0)


def test_fp32_bundle_computes_in_f32_whatever_the_cpu(openvino_bundle):
    # OpenVINO's default on bf16-capable CPUs is bf16; the runtime must override it.
    assert load_bundle(openvino_bundle).engine.precision == "f32"


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from defectkit.exporters.runtime import load_bundle
bundle = load_bundle(sys.argv[1])
image = np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)
result = bundle.inspect([image], ["x.png"])[0]
assert result.anomaly_map.shape == (90, 70) and result.verdict in ("good", "defect")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "torchvision", "onnxscript")
               and sys.modules[m] is not None)
assert not heavy, heavy
print("torch-free ok", bundle.engine.name, result.score)
"""


@pytest.mark.parametrize("which", ["onnx_bundle", "openvino_bundle"])
def test_runtime_needs_no_torch(request, which):
    bundle = request.getfixturevalue(which)
    out = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch-free ok" in out.stdout
