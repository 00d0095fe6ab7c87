"""The caption head's graph part on a tiny random open_clip tower: code paths and export parity.

Random weights: these tests check shapes, pooling maths and that ONNX Runtime computes
the same scores as PyTorch - never whether a term is the right one.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defectkit.core.caption.vocabulary import Vocabulary
from defectkit.fewshot.caption_head import CaptionHead, embed_vocabulary, text_aligned
from defectkit.inspect.backbones import FeatureInfo, create_backbone, tiny_config_overrides

VOCAB = Vocabulary(("scratch", "crack", "hole", "missing part"), ("dark", "bright"))


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_backbone(
        "ViT-B-16", pretrained=False, config_overrides=tiny_config_overrides("ViT-B-16"),
        layers=["block1", "embed"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def head(clip):
    head = CaptionHead()
    assert head.fit(clip, VOCAB)
    return head


def test_vocabulary_is_embedded_with_the_text_tower(clip, head):
    emb = head.vocab_embeddings
    assert emb.shape == (len(VOCAB), clip.embed_dim) and head.active
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(VOCAB)))
    # Prompt ensembling: the mean of the entry's prompt embeddings, re-normalised.
    crack = F.normalize(clip.encode_text(VOCAB.prompts()[1]).mean(dim=0), dim=0)
    torch.testing.assert_close(emb[1], crack)
    torch.testing.assert_close(embed_vocabulary(clip.encode_text, VOCAB, batch_size=5), emb)
    assert "vocab_embeddings" in dict(head.named_buffers())


def test_scores_are_cosines_of_the_weighted_region(clip, head):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    embed = clip(x)["embed"]  # 2 x 16 x 4 x 4
    weights = torch.zeros(2, 8, 8)  # a finer grid, as the patch-feature grid may be
    weights[:, 2:4, 4:6] = 1.0  # exactly patch (1, 2) of the 4 x 4 token grid
    scores = head(embed, weights)
    assert scores.shape == (2, len(VOCAB))
    expected = F.normalize(embed[:, :, 1, 2], dim=1) @ head.vocab_embeddings.t()
    torch.testing.assert_close(scores, expected)
    assert float(scores.abs().max()) <= 1.0 + 1e-6


def test_no_text_tower_no_head(clip):
    cnn = SimpleNamespace(feature_info=(FeatureInfo("s8", 40, 8),), text_aligned=False)
    no_embed = SimpleNamespace(feature_info=(FeatureInfo("block1", 32, 8),), text_aligned=True)
    head = CaptionHead()
    assert not text_aligned(cnn) and not text_aligned(no_embed) and text_aligned(clip)
    assert not head.fit(cnn, VOCAB) and not head.active
    assert not head.fit(no_embed, VOCAB)
    assert head.vocab_embeddings.shape == (0, 0)


class _CaptionGraph(nn.Module):
    """Image + region weights -> vocabulary scores: the part of the Inspector graph the head adds."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x, weights):
        return self.head(self.backbone(x)["embed"], weights)


# Both inputs share the one batch dimension; the exporter says so in a warning.
@pytest.mark.filterwarnings("ignore:# The axis name")
def test_export_parity_with_onnxruntime(clip, head, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _CaptionGraph(clip, head).eval()
    gen = torch.Generator().manual_seed(3)
    x, w = torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 8, 8, generator=gen)
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        program = torch.onnx.export(
            model, (x, w), dynamo=True, input_names=["image", "weights"], output_names=["vocab_scores"],
            dynamic_shapes=({0: batch}, {0: batch}), opset_version=18, verbose=False, report=False,
        )  # fmt: skip
    path = tmp_path / "caption.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3, w3 = torch.rand(3, 3, 32, 32, generator=gen), torch.rand(3, 8, 8, generator=gen)
    (got,) = session.run(None, {"image": x3.numpy(), "weights": w3.numpy()})
    with torch.no_grad():
        want = model(x3, w3).numpy()
    assert got.shape == (3, len(VOCAB))
    np.testing.assert_allclose(got, want, atol=1e-4)
