"""The caption adapter on a tiny random open_clip tower: vocabulary embedding, region
scores, and the ``embed`` map's export parity.

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
from defectkit.core.head import vocabulary_scores
from defectkit.fewshot.caption_head import EMBED_LAYER, embed_vocabulary, text_aligned
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
def vocab_embeddings(clip) -> torch.Tensor:
    return embed_vocabulary(clip.encode_text, VOCAB)


def test_vocabulary_is_embedded_with_the_text_tower(clip, vocab_embeddings):
    emb = vocab_embeddings
    assert emb.shape == (len(VOCAB), clip.embed_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(VOCAB)))
    # Prompt ensembling: the mean of the entry's prompt embeddings, re-normalised.
    crack = F.normalize(clip.encode_text(VOCAB.prompts()[1]).mean(dim=0), dim=0)
    torch.testing.assert_close(emb[1], crack)
    torch.testing.assert_close(embed_vocabulary(clip.encode_text, VOCAB, batch_size=5), emb)
    assert embed_vocabulary(clip.encode_text, Vocabulary((), ())).shape == (0, 0)


def test_scores_are_cosines_of_the_weighted_region(clip, vocab_embeddings):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embed = clip(x)[EMBED_LAYER][0].numpy()  # 16 x 4 x 4
    weights = np.zeros((8, 8), np.float32)  # a finer grid, as the patch-feature grid may be
    weights[2:4, 4:6] = 0.25  # exactly patch (1, 2) of the 4 x 4 token grid
    scores = vocabulary_scores(embed, weights, vocab_embeddings.numpy())
    assert scores.shape == (len(VOCAB),)
    token = F.normalize(torch.from_numpy(embed[:, 1, 2]), dim=0)
    np.testing.assert_allclose(scores, (vocab_embeddings @ token).numpy(), atol=1e-5)
    assert float(np.abs(scores).max()) <= 1.0 + 1e-6


def test_only_a_text_tower_with_an_embed_map_is_text_aligned(clip):
    cnn = SimpleNamespace(feature_info=(FeatureInfo("s8", 40, 8),), text_aligned=False)
    no_embed = SimpleNamespace(feature_info=(FeatureInfo("block1", 32, 8),), text_aligned=True)
    assert not text_aligned(cnn) and not text_aligned(no_embed) and text_aligned(clip)


class _EmbedGraph(nn.Module):
    """Image -> text-space patch embeddings: the part of the Inspector graph the caption needs."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)[EMBED_LAYER]


def test_export_parity_with_onnxruntime(clip, vocab_embeddings, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _EmbedGraph(clip).eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        program = torch.onnx.export(
            model, (x,), dynamo=True, input_names=["image"], output_names=["embed"],
            dynamic_shapes=({0: batch},), opset_version=18, verbose=False, report=False,
        )  # fmt: skip
    path = tmp_path / "embed.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3, weights = torch.rand(3, 3, 32, 32, generator=gen), torch.rand(3, 8, 8, generator=gen).numpy()
    (got,) = session.run(None, {"image": x3.numpy()})
    with torch.no_grad():
        want = model(x3).numpy()
    assert got.shape == want.shape == (3, clip.embed_dim, 4, 4)
    vocab = vocab_embeddings.numpy()
    for g, w, wt in zip(got, want, weights, strict=True):
        np.testing.assert_allclose(vocabulary_scores(g, wt, vocab), vocabulary_scores(w, wt, vocab), atol=1e-4)
