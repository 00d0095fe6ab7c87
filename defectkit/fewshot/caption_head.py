"""The caption adapter's graph part: the region's CLIP embedding against the vocabulary.

A few matmuls on tensors the model already has, so it exports with it and the runtime
returns its scores beside score, map and logits; the words are written later, in numpy
(:mod:`defectkit.core.caption`), by the PyTorch path and the runtime alike. The other
caption evidence, the nearest labelled shot, is the prototype head's per-prototype
similarity (:meth:`defectkit.fewshot.prototypes.PrototypeHead.similarity`).

The text embeddings are computed once at fit time with the backbone's text tower
(:func:`embed_vocabulary`) and kept in a buffer, so no text model is in the graph.
Without a text-aligned backbone the head is empty and not wired into the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from defectkit.core.caption.vocabulary import Vocabulary
from defectkit.fewshot.prototypes import normalised_weights

#: Layer name of patch tokens projected into the CLIP text space (backbones/clip.py).
EMBED_LAYER = "embed"


def text_aligned(backbone: nn.Module) -> bool:
    """True when ``backbone`` has a text tower and returns the ``embed`` map."""
    names = [info.name for info in getattr(backbone, "feature_info", ())]
    return bool(getattr(backbone, "text_aligned", False)) and EMBED_LAYER in names


@torch.no_grad()
def embed_vocabulary(
    encode_text: Callable[[list[str]], torch.Tensor],
    vocabulary: Vocabulary,
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Vocabulary -> V x E unit text embeddings, each the mean of its prompts' embeddings.

    Args:
        encode_text: texts -> T x E L2-normalised embeddings (``backbone.encode_text``).
        vocabulary: the entries; their prompts come from :meth:`Vocabulary.prompts`.
    """
    prompts = vocabulary.prompts()
    flat = [p for entry in prompts for p in entry]
    if not flat:
        return torch.zeros(0, 0)
    chunks = [
        encode_text(flat[i : i + batch_size]).float().cpu() for i in range(0, len(flat), batch_size)
    ]
    per_prompt = torch.cat(chunks)
    sizes = [len(entry) for entry in prompts]
    means = torch.stack([part.mean(dim=0) for part in per_prompt.split(sizes)])
    return F.normalize(means, dim=1)


class CaptionHead(nn.Module):
    """Region-pooled CLIP patch embedding vs vocabulary embeddings -> N x V cosines.

    Buffer ``vocab_embeddings`` (V x E, unit rows; 0 x 0 until fitted or without a text
    tower). Pure tensor maths with static sizes, so it exports to ONNX / OpenVINO.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("vocab_embeddings", torch.zeros(0, 0))

    @property
    def active(self) -> bool:
        """True when a vocabulary was embedded (the graph should return its scores)."""
        return self.vocab_embeddings.shape[0] > 0

    def set_vocabulary(self, embeddings: torch.Tensor) -> None:
        """Store V x E text embeddings (re-normalised; an empty tensor empties the head)."""
        if embeddings.numel() == 0:
            self.vocab_embeddings = torch.zeros(0, 0)
        else:
            self.vocab_embeddings = F.normalize(embeddings.detach().float(), dim=1).contiguous()

    def fit(self, backbone: nn.Module, vocabulary: Vocabulary | Sequence[str]) -> bool:
        """Embed ``vocabulary`` with the backbone's text tower; empty the head without one.

        Returns:
            Whether the head is active afterwards.
        """
        if not text_aligned(backbone) or len(vocabulary) == 0:
            self.set_vocabulary(torch.zeros(0, 0))
            return False
        if not isinstance(vocabulary, Vocabulary):
            vocabulary = Vocabulary.from_lines(vocabulary)
        self.set_vocabulary(embed_vocabulary(backbone.encode_text, vocabulary))
        return True

    def forward(self, embed: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Score the region.

        Args:
            embed: N x E x h x w patch tokens in the text space (the backbone's ``embed``).
            weights: N x H x W non-negative region weights (``anomaly_weights`` of the
                anomaly map, on the patch-feature grid; resized to h x w here).

        Returns:
            N x V cosine similarities between the weighted mean of the unit patch
            embeddings and each vocabulary entry.
        """
        if weights.shape[-2:] != embed.shape[-2:]:
            # Area pooling keeps each patch's share of the weight; static sizes export.
            weights = F.adaptive_avg_pool2d(weights[:, None], tuple(embed.shape[-2:]))[:, 0]
        w = normalised_weights(weights)
        patches = F.normalize(embed, dim=1).flatten(2)  # N x E x hw
        pooled = torch.einsum("nep,np->ne", patches, w)
        return F.normalize(pooled, dim=1) @ self.vocab_embeddings.t()
