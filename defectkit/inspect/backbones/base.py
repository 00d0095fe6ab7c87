"""The one contract every backbone family answers, and helpers the families share.

:class:`FeatureExtractor` takes an already *normalised* N x 3 x H x W float tensor (the
model normalises inside its graph with ``preprocessing.mean/std``) and returns
``{layer_name: N x C x h x w}`` in the order of ``feature_info``, with the channels and
stride of each map (timm's ``feature_info`` idea, for CNNs, CLIP towers and DINOv2 alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from defectkit.errors import BackboneError


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
    #: True when the weights only work at ``preprocessing.input_size`` (ViT position
    #: embeddings); CNNs take any size, which lets the model keep native resolution.
    fixed_input_size: bool = True

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode whatever a parent asks.

        Frozen means frozen: an ``InspectorModel.train()`` must not switch BatchNorm to batch
        statistics or turn dropout on, which would change the features under the fit.
        """
        return super().train(False)


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry as a user sees it (``inspect backbones`` prints these)."""

    name: str
    family: str  # "efficientnet" | "open_clip" | "dinov2"
    default_weights: str  # a pretrained tag, or the embedded file's name
    text_aligned: bool
    available_offline: bool  # the default weights are on this machine right now
    fetch_hint: str  # what to do to get the weights (or that nothing is needed)


@dataclass(frozen=True)
class HubFile:
    """Where a tag's weights live on the Hugging Face Hub: a repo and file names, best first."""

    repo_id: str
    filenames: tuple[str, ...]

    def url(self, filename: str | None = None, endpoint: str | None = None) -> str:
        """Download URL of ``filename`` (default: the preferred one) on ``endpoint``."""
        base = (endpoint or "https://huggingface.co").rstrip("/")
        return f"{base}/{self.repo_id}/resolve/main/{filename or self.filenames[0]}"


def select_layers(
    layers: Sequence[str] | None, available: Sequence[str], default: Sequence[str], name: str
) -> tuple[str, ...]:
    """Validate requested layer names against what a backbone offers (family helper)."""
    chosen = tuple(default if layers is None else layers)
    unknown = [layer for layer in chosen if layer not in available]
    if unknown or not chosen:
        raise BackboneError(
            f"{name}: unknown layers {unknown or '(none given)'}; choose from {', '.join(available)}"
        )
    if len(set(chosen)) != len(chosen):
        raise BackboneError(f"{name}: layers {list(chosen)} name a map twice")
    return chosen


def default_blocks(depth: int) -> list[int]:
    """ViT blocks at 1/4, 1/2 and 3/4 depth (0-based): mid-level patch features.

    Early blocks are too local and the last ones too semantic (and, for CLIP, too
    shaped by the image-level objective) for defect patches: 12 -> 2, 5, 8; 24 -> 5, 11, 17.
    """
    return sorted({max(0, round(depth * f) - 1) for f in (0.25, 0.5, 0.75)})


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter: backbones are never trained here."""
    module.eval()
    module.requires_grad_(False)
    return module
