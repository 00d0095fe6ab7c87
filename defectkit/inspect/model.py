"""InspectorModel: frozen backbone + patch features + anomaly, prototype and caption heads.

``forward(images) -> RawOutputs`` is pure tensor maths and is exactly the graph the
exporters export. The fitted state (memory bank, prototypes, vocabulary embeddings,
calibration references) lives in registered buffers, filled by
:func:`defectkit.inspect.fit.fit`; what is not a tensor (classes, thresholds, the
caption context, a summary of the shots) sits beside them as plain attributes. Turning
raw outputs into verdicts and words is numpy, in :mod:`defectkit.core`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import ModelInfo
from defectkit.core.results import RawOutputs, Thresholds
from defectkit.errors import ConfigError, NotFittedError
from defectkit.fewshot.anomaly import AnomalyHead
from defectkit.fewshot.caption_head import EMBED_LAYER, CaptionHead, text_aligned
from defectkit.fewshot.prototypes import PrototypeHead, anomaly_weights, region_descriptor
from defectkit.inspect.backbones import FeatureExtractor
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.features import FeatureNorm, PatchFeatures, grain_ratio


class InspectorModel(nn.Module):
    """The exported graph. ``forward`` takes N x 3 x H x W floats in [0, 1].

    Args:
        config: the architecture (backbone, layers, pooling, heads' settings).
        backbone: a ready feature extractor instead of the registry's (tests build tiny
            random ones); default: ``create_backbone(config.backbone, ...)``.
    """

    def __init__(self, config: InspectorConfig | None = None, *, backbone: FeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config or InspectorConfig()
        if backbone is None:
            from defectkit.inspect.backbones import create_backbone

            # Text-aligned backbones also return ``embed`` for the caption head.
            backbone = create_backbone(
                self.config.backbone, weights=self.config.weights, layers=self.config.layers,
                text_embedding=True,
            )  # fmt: skip
        self.backbone = backbone
        if self.config.vocabulary and not text_aligned(backbone):
            raise ConfigError(
                f"{backbone.name} has no text tower, so it cannot score a vocabulary: drop "
                "--vocabulary, or choose a text-aligned backbone (open_clip, e.g. ViT-B-16)"
            )
        pre = self.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1))
        self.features = PatchFeatures(
            _patch_layers(self.backbone, self.config.layers),
            pool_size=self.config.pool_size,
            stride=self.config.grid_stride,
            detail=self.config.detail,
        )
        if self.backbone.fixed_input_size and self.config.input_size not in (None, pre.input_size):
            raise ConfigError(
                f"{self.backbone.name} only works at {pre.input_size[0]} x {pre.input_size[1]}; "
                "drop --input-size or choose a CNN backbone"
            )
        self.set_input_size(self.config.input_size or pre.input_size)
        self.norm = FeatureNorm(self.features.groups, detail_weight=self.config.detail_weight)
        self.anomaly = AnomalyHead(
            self.features.dim, sigma=self.config.sigma, top_fraction=self.config.top_fraction
        )
        self.prototypes = PrototypeHead(
            self.features.dim, temperature=self.config.temperature, sharpness=self.config.sharpness
        )
        self.caption = CaptionHead()
        #: Set by fitting (and loading): class names in logit order, the thresholds, a
        #: summary of the shots, and the shots' classes and notes in prototype order
        #: with the embedded vocabulary.
        self.classes: tuple[str, ...] = ()
        self.thresholds: Thresholds | None = None
        self.support_summary: dict = {}
        self.caption_context = CaptionContext()
        self.eval()

    # ------------------------------------------------------------------ size
    def set_input_size(self, size: Sequence[int]) -> None:
        """Run at ``size`` = (H, W) from now on (the patch grid follows).

        The memory bank and prototypes are per-patch features, so they carry over to
        another resolution, but thresholds were calibrated at the fitted size.
        """
        self.input_size = (int(size[0]), int(size[1]))
        self.grid = self.features.grid_size(self.input_size)

    # ------------------------------------------------------------------ state
    @property
    def fitted(self) -> bool:
        return self.anomaly.fitted and self.prototypes.fitted and self.thresholds is not None

    def require_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless :func:`~defectkit.inspect.fit.fit` ran."""
        if not self.fitted:
            raise NotFittedError("this inspector is not fitted: run `inspect fit` first")

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of :meth:`forward`'s outputs present, in order (the exported graph's)."""
        names = RawOutputs._fields
        return names if self.caption.active else names[:-1]

    def info(self) -> ModelInfo:
        """What the :class:`~defectkit.core.predictor.Predictor` needs beside the graph."""
        self.require_fitted()
        return ModelInfo(
            classes=self.classes, thresholds=self.thresholds, input_size=self.input_size,
            caption_context=self.caption_context, support_summary=self.support_summary,
        )  # fmt: skip

    def fitted_state(self) -> dict[str, torch.Tensor]:
        """Every buffer filled by fitting (everything but the frozen backbone)."""
        return {k: v.contiguous() for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_fitted_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put :meth:`fitted_state` tensors back (their shapes may differ from an
        unfitted model's, so they replace the buffers rather than copy into them).

        Raises:
            KeyError: the names are not exactly this model's fitted buffers.
        """
        expected = set(self.fitted_state())
        if set(tensors) != expected:
            raise KeyError(f"unexpected tensors {sorted(set(tensors) ^ expected)}")
        for key, value in tensors.items():
            owner, _, name = key.rpartition(".")
            setattr(self.get_submodule(owner), name, value)

    # ------------------------------------------------------------------ graph
    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in [0, 1] -> N x D x h x w standardised patch features."""
        return self._maps_and_features(x)[1]

    def _maps_and_features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        maps = self.backbone((x - self.mean) / self.std)
        return maps, self.norm(self.features(maps, self.grid, x))

    def grain(self, x: torch.Tensor) -> torch.Tensor | None:
        """Grain ratios of preprocessed images (N), or None without the detail group."""
        return grain_ratio(x) if self.features.detail else None

    def forward(self, x: torch.Tensor) -> RawOutputs:
        """Images -> :class:`~defectkit.core.results.RawOutputs`.

        ``score`` N, ``anomaly_map`` N x H x W at input size, ``class_logits`` N x K,
        ``prototype_similarity`` N x P (one per labelled shot, larger = nearer; a class
        logit is the largest of its shots'), and with a vocabulary ``vocab_scores`` N x V
        (cosines of the region's CLIP embedding with each entry). The caption evidence
        pools the same anomaly-weighted region the class head pools.
        """
        maps, feats = self._maps_and_features(x)
        pmap, score = self.anomaly(feats, self.norm.detail_z(feats), self.grain(x))
        weights = anomaly_weights(pmap, self.prototypes.sharpness)
        similarity = self.prototypes.similarity(region_descriptor(feats, weights))
        amap = F.interpolate(pmap[:, None], size=self.input_size, mode="bilinear", align_corners=False)[:, 0]
        vocab = self.caption(maps[EMBED_LAYER], weights) if self.caption.active else None
        return RawOutputs(score, amap, self.prototypes.class_logits(similarity), similarity, vocab)


def _patch_layers(backbone: FeatureExtractor, layers: Sequence[str] | None) -> list:
    """The backbone maps that become patch features.

    ``embed`` (CLIP patch tokens in the text space) is there for the caption head; it
    is a patch feature only when ``layers`` names it, or when it is the only map.
    """
    infos = list(backbone.feature_info)
    if layers is not None and EMBED_LAYER in layers:
        return infos
    rest = [i for i in infos if i.name != EMBED_LAYER]
    return rest or infos
