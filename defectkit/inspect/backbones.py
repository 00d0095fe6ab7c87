"""Backbone registry: ``name -> factory``, resolved lazily, one contract for every family.

CONTRACT (the Inspector and the exporters rely on exactly this):

* ``create_backbone(name, *, weights=None, pretrained=True, layers=None)`` returns a
  frozen (eval mode, ``requires_grad=False``) :class:`FeatureExtractor`.
  - ``weights=None``: the registry's default weights for ``name`` (a tag or the embedded
    file); a str/Path: a local file, a local directory, or a pretrained tag looked up in
    the Hugging Face cache (``HF_HUB_OFFLINE`` respected, never a download, never a hang).
  - ``pretrained=False``: explicit random initialisation, for tests of code paths only.
  - ``layers``: names of the maps to return (``None`` = the family's default set).
* ``FeatureExtractor.forward(x)`` takes an already *normalised* N x 3 x H x W float tensor
  (the Inspector normalises inside its graph using ``preprocessing.mean/std``) and
  returns ``{layer_name: N x C x h x w}`` in the order of ``feature_info``.
* ``list_backbones()`` returns :class:`BackboneSpec` records, including whether weights
  are present locally.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    """How images must look when they reach the backbone; travels with weights and bundles."""

    input_size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class FeatureInfo:
    """One returned feature map: its name, channel count and stride in input pixels."""

    name: str
    channels: int
    stride: int


class FeatureExtractor(nn.Module):
    """Frozen backbone returning named NCHW feature maps.

    Subclasses set ``name``, ``preprocessing``, ``feature_info`` and ``weights_id``
    (a short string: tag or file name plus SHA-256 of the weights, or ``"random"``), and
    ``text_aligned`` (True when a text tower exists for the caption adapter).
    """

    name: str
    preprocessing: Preprocessing
    feature_info: tuple[FeatureInfo, ...]
    weights_id: str
    text_aligned: bool = False

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError
