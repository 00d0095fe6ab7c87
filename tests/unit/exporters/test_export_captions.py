"""Caption evidence through the graph: a tiny random open_clip Inspector, exported and run.

Random weights: these tests check that the graph returns the patches' text-space
embeddings (``embed``), that the vocabulary scores and nearest-shot similarities the
numpy head computes from them survive export with the same numbers (PyTorch, ONNX
Runtime, OpenVINO), and reach the caption through the torch-free runtime - never
whether a term is the right one.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from defectkit.core.caption.vocabulary import DEFAULT_ATTRIBUTES, DEFAULT_TERMS, Vocabulary
from defectkit.errors import ConfigError
from defectkit.exporters.export import export_bundle
from defectkit.exporters.runtime import load_bundle
from defectkit.exporters.selfcheck import TOLERANCES, compare
from defectkit.fewshot.caption_head import EMBED_LAYER
from defectkit.inspect.backbones import create_backbone, tiny_config_overrides
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.inspector import Inspector

REPO = Path(__file__).resolve().parents[3]
EXTRA = ("burn mark", "attribute: dull")
#: The graph's outputs (per tile) and the raw outputs the head makes of them (per image).
GRAPH_OUTPUTS = ("features", "distance", "defect_distance", "embed")
OUTPUTS = ("score", "anomaly_map", "class_logits", "prototype_similarity", "vocab_scores")


def _tiny_clip():
    torch.manual_seed(0)
    return create_backbone(
        "ViT-B-16", pretrained=False, config_overrides=tiny_config_overrides("ViT-B-16"),
        text_embedding=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clip_fitted():
    """(inspector, support images, held-out images): tiny CLIP, 2 shots per class with notes."""
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=4, defects={"scratch": 3, "hole": 3}, size=(64, 64), seed=1)
    support, test, seen = [], [], {}
    for s in samples:
        seen[s.label] = seen.get(s.label, 0) + 1
        if seen[s.label] <= 2:
            note = None if s.label == "good" else f"{s.label} note {seen[s.label]}"
            support.append(replace(s, note=note))
        else:
            test.append(s)
    config = InspectorConfig(backbone="ViT-B-16", augmentations=1, bank_size=64, vocabulary=EXTRA, evidence="contrast")
    inspector = Inspector(config, backbone=_tiny_clip())
    inspector.fit(support)
    return inspector, [s.load_image() for s in support], [s.load_image() for s in test]


@pytest.fixture(scope="module")
def clip_bundles(clip_fitted, tmp_path_factory):
    inspector, support, _ = clip_fitted
    root = tmp_path_factory.mktemp("clip")
    return {
        target: export_bundle(inspector, root / target, target=target, check_images=support)
        for target in ("onnx", "openvino")
    }


def test_the_vocabulary_is_embedded_and_the_graph_names_its_scores(clip_fitted):
    inspector, _, test = clip_fitted
    vocabulary = inspector.caption_context.vocabulary
    assert vocabulary == (*DEFAULT_TERMS, "burn mark", *(f"attribute: {a}" for a in DEFAULT_ATTRIBUTES), "attribute: dull")
    assert inspector.model.head.vocabulary.shape == (len(vocabulary), 16)
    assert inspector.output_names == GRAPH_OUTPUTS
    # ``embed`` feeds the caption head only: the patch features are the blocks.
    assert EMBED_LAYER not in inspector.model.features.names
    raw = inspector.raw(test)
    assert raw.names == OUTPUTS
    score, amap, logits, sims, vocab = raw
    n = len(test)
    assert vocab.shape == (n, len(vocabulary)) and np.abs(vocab).max() <= 1.0 + 1e-5
    assert sims.shape == (n, 6) and logits.shape == (n, 3)


def test_export_parity_of_the_caption_outputs(clip_fitted, clip_bundles):
    inspector, _, test = clip_fitted
    reference = inspector.raw(test)
    reference_each = inspector.raw_each(test)
    for target, path in clip_bundles.items():
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["output_names"] == list(GRAPH_OUTPUTS)
        assert manifest["head"]["vocabulary"] == inspector.model.head.to_dict()["vocabulary"]
        assert manifest["vocabulary"] == list(inspector.caption_context.vocabulary)
        assert [s["note"] for s in manifest["shots"]] == list(inspector.caption_context.shot_notes)
        check = manifest["selfcheck"]
        assert check["passed"] and check["vocab_max_abs"] is not None
        engines = ["openvino"] if target == "openvino" else ["onnxruntime", "openvino"]
        for engine in engines:
            bundle = load_bundle(path, engine=engine)
            exported = bundle.raw(test)
            assert exported.names == OUTPUTS
            found = compare(reference_each, bundle.raw_each(test), TOLERANCES["fp32"], threshold=0.0)
            assert not found["failures"], (target, engine, found)
            np.testing.assert_allclose(exported.vocab_scores, reference.vocab_scores, atol=1e-4)
            np.testing.assert_allclose(
                exported.prototype_similarity, reference.prototype_similarity, rtol=1e-4, atol=1e-3
            )


def test_bundle_captions_equal_pytorch_captions(clip_fitted, clip_bundles):
    inspector, _, test = clip_fitted
    ours = load_bundle(clip_bundles["onnx"]).inspect(test)
    theirs = inspector.inspect(test)
    for a, b in zip(ours, theirs, strict=True):
        assert a.verdict == b.verdict and a.label == b.label
        if not b.is_defective:
            continue
        first_a, first_b = a.defects[0].to_dict(), b.defects[0].to_dict()
        note_a, note_b = first_a["note"], first_b["note"]
        assert (note_a is None) == (note_b is None)
        if note_b is not None:  # the shot's words exactly, its similarity within tolerance
            assert {k: v for k, v in note_a.items() if isinstance(v, str)} == {
                k: v for k, v in note_b.items() if isinstance(v, str)
            }
            numbers = {k: v for k, v in note_b.items() if not isinstance(v, str)}
            assert {k: note_a[k] for k in numbers} == pytest.approx(numbers, rel=1e-4)
        va, vb = first_a["vocabulary"], first_b["vocabulary"]
        assert set(va["scores"]) == set(Vocabulary.from_lines(inspector.caption_context.vocabulary).names)
        assert (va["term"], va["attribute"]) == (vb["term"], vb["attribute"])


def test_an_inspector_without_text_tower_refuses_a_vocabulary():
    with pytest.raises(ConfigError, match="no text tower"):
        Inspector(InspectorConfig(vocabulary=("burn mark",), tile_size=(64, 64)))


def test_low_confidence_reads_uncertain_through_the_runtime(clip_fitted, tmp_path):
    """A flat class head (huge temperature): every defect type is hedged, nothing claimed."""
    inspector, support, test = clip_fitted
    flat = copy.deepcopy(inspector)
    head = flat.model.head
    flat.model.head = replace(head, classes=replace(head.classes, temperature=1e6))
    flat.set_threshold(image=-1e9)  # every image is defective, so every caption has a type
    path = export_bundle(flat, tmp_path / "flat", target="onnx", check_images=support)
    bundle = load_bundle(path)
    bundle.set_threshold(image=-1e9)
    for result in bundle.inspect(test):
        first = result.defects[0]
        assert first.uncertain and first.confidence < 0.6
        assert result.caption.startswith("Possibly "), result.caption
        assert "% confidence" not in result.caption


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from defectkit.exporters.runtime import load_bundle
bundle = load_bundle(sys.argv[1])
bundle.set_threshold(image=-1e9)
images = list(np.load(sys.argv[2]))  # the labelled defect shots: each is nearest a shot of its class
cited = 0
for result in bundle.inspect(images):
    first = result.defects[0].to_dict()
    assert set(first["vocabulary"]["scores"]) >= {"scratch", "burn mark", "dull"}
    if first["nearer_good"]:
        assert first["note"] is None
        continue
    assert first["note"]["text"].startswith(first["type"] + " note"), first
    assert first["note"]["text"] in result.caption
    cited += 1
assert cited, "no caption cited a note"
print("torch-free captions ok", cited)
"""


def test_runtime_captions_need_no_torch(clip_fitted, clip_bundles, tmp_path):
    _, support, _ = clip_fitted
    np.save(tmp_path / "shots.npy", np.stack(support[2:]))  # the defect shots
    out = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(clip_bundles["openvino"]), str(tmp_path / "shots.npy")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "torch-free captions ok" in out.stdout
