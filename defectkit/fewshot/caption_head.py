"""The caption adapter's fit-time part: the vocabulary's text embeddings.

The text embeddings are computed once at fit time with the backbone's text tower
(:func:`embed_vocabulary`) and stored in the head (:class:`defectkit.core.head.Head`),
so no text model is needed line-side: the graph returns the patches' text-space
embeddings (``embed``) and the numpy head scores the region against the vocabulary
(:func:`defectkit.core.head.vocabulary_scores`), on the PyTorch path and the runtime
alike. Without a text-aligned backbone there is no vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from defectkit.core.caption.vocabulary import Vocabulary

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
