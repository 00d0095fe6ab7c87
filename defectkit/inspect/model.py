"""InspectorModel: the exported graph, one fixed-size tile at a time.

``forward(tiles) -> TileOutputs`` is pure tensor maths: frozen backbone, patch features
standardised with the good shots' statistics, and each patch's distance to the memory
bank of good patches and to the labelled defects' patches. Those distances are the
expensive part and run on the engine (OpenVINO, ONNX Runtime); stitching the tiles of
an image and everything that needs the whole image (smoothing, the score, the class
head, the caption's vocabulary scores) is numpy in :mod:`defectkit.core`, shared by the
PyTorch path and the runtime. The fitted state lives in registered buffers (filled by
:func:`defectkit.inspect.fit.fit`) and in :attr:`head` (plain JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from defectkit.core.caption import CaptionContext
from defectkit.core.head import Head, check_margin_weight
from defectkit.core.predictor import ModelInfo
from defectkit.core.results import Thresholds, TileOutputs
from defectkit.core.tiling import TileSpec
from defectkit.errors import ConfigError, NotFittedError
from defectkit.fewshot.anomaly import nearest_distance
from defectkit.fewshot.caption_head import EMBED_LAYER, text_aligned
from defectkit.inspect.backbones import FeatureExtractor
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.features import FeatureNorm, PatchFeatures


class InspectorModel(nn.Module):
    """The exported graph. ``forward`` takes N x 3 x th x tw tiles, floats in [0, 1].

    Args:
        config: the architecture (backbone, layers, pooling, tiles, heads' settings).
        backbone: a ready feature extractor instead of the registry's (tests build tiny
            random ones); default: ``create_backbone(config.backbone, ...)``.
    """

    def __init__(self, config: InspectorConfig | None = None, *, backbone: FeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config or InspectorConfig()
        if backbone is None:
            from defectkit.inspect.backbones import create_backbone

            # Text-aligned backbones also return ``embed`` for the caption's vocabulary.
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
        try:  # the rule a saved head is loaded by: a fit must not save what cannot load
            check_margin_weight(self.config.margin_weight)
        except ValueError as err:
            raise ConfigError(f"InspectorConfig.margin_weight: {err}") from None
        pre = self.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1))
        self.features = PatchFeatures(
            _patch_layers(self.backbone, self.config.layers),
            pool_size=self.config.pool_size,
            stride=self.config.grid_stride,
            detail=self.config.detail,
        )
        if self.backbone.fixed_input_size and self.config.tile_size not in (None, pre.input_size):
            raise ConfigError(
                f"{self.backbone.name} only works at {pre.input_size[0]} x {pre.input_size[1]}; "
                "drop --tile-size or choose a CNN backbone"
            )
        self.norm = FeatureNorm(self.features.groups)
        dim = self.features.dim
        self.register_buffer("bank", torch.zeros(0, dim))
        self.register_buffer("bank_sqnorm", torch.zeros(0))
        self.register_buffer("defect_bank", torch.zeros(0, dim))
        self.register_buffer("defect_sqnorm", torch.zeros(0))
        self.set_tiles(self._default_tiles())
        #: Set by fitting (and loading): the numpy head, class names in logit order, the
        #: thresholds, a summary of the shots, and the shots' classes and notes in
        #: prototype order with the embedded vocabulary.
        self.head: Head | None = None
        self.classes: tuple[str, ...] = ()
        self.thresholds: Thresholds | None = None
        self.support_summary: dict = {}
        self.caption_context = CaptionContext()
        self.eval()

    def _default_tiles(self) -> TileSpec:
        cfg, pre = self.config, self.backbone.preprocessing
        size = tuple(cfg.tile_size or pre.input_size)
        if self.backbone.fixed_input_size:
            size = tuple(pre.input_size)
        stride = self.features.stride
        size = (max(stride, size[0] // stride * stride), max(stride, size[1] // stride * stride))
        margin = min(cfg.tile_margin // stride * stride, (min(size) // 2 - stride) // stride * stride)
        return TileSpec(size=size, stride=stride, margin=max(0, margin), scale=cfg.scale, roi=cfg.roi)

    # ------------------------------------------------------------------ tiles
    def set_tiles(self, spec: TileSpec) -> None:
        """Run on tiles of ``spec`` from now on (the patch grid follows).

        The banks hold per-patch features, so they carry over to another tile size, but
        the references were calibrated with the fitted tiles.
        """
        if spec.stride != self.features.stride:
            raise ConfigError(f"tile stride {spec.stride} differs from the features' {self.features.stride}")
        self.tiles = spec
        self.input_size = tuple(spec.size)
        self.grid = spec.grid

    # ------------------------------------------------------------------ state
    @property
    def fitted(self) -> bool:
        return self.head is not None and self.thresholds is not None

    @property
    def has_verdict(self) -> bool:
        """False for a type-only model (fitted without ``good`` shots)."""
        return self.bank.shape[0] > 0

    def require_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless :func:`~defectkit.inspect.fit.fit` ran."""
        if not self.fitted:
            raise NotFittedError("this inspector is not fitted: run `inspect fit` first")

    @property
    def text_aligned(self) -> bool:
        return text_aligned(self.backbone)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of :meth:`forward`'s outputs, in order (the exported graph's)."""
        names = ["features"]
        if self.has_verdict:
            names.append("distance")
        if self.defect_bank.shape[0] > 0:
            names.append("defect_distance")
        if self.head is not None and self.head.vocabulary is not None and self.text_aligned:
            names.append("embed")
        return tuple(names)

    def info(self) -> ModelInfo:
        """What the :class:`~defectkit.core.predictor.Predictor` needs beside the graph."""
        self.require_fitted()
        return ModelInfo(
            classes=self.classes, thresholds=self.thresholds, input_size=self.input_size,
            caption_context=self.caption_context, support_summary=self.support_summary,
            tiles=self.tiles, head=self.head,
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
            setattr(self.get_submodule(owner) if owner else self, name, value)

    def set_banks(self, good: torch.Tensor, defect: torch.Tensor | None = None) -> None:
        """Store the memory banks (M x D good patches, Q x D labelled-defect patches)."""
        self.bank = good.detach().float().contiguous()
        self.bank_sqnorm = (self.bank * self.bank).sum(dim=1)
        defect = torch.zeros(0, self.bank.shape[1] or self.features.dim) if defect is None else defect
        self.defect_bank = defect.detach().float().contiguous()
        self.defect_sqnorm = (self.defect_bank * self.defect_bank).sum(dim=1)

    # ------------------------------------------------------------------ graph
    def backbone_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone((x - self.mean) / self.std)

    def patch_features(self, x: torch.Tensor, maps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """N x 3 x th x tw in [0, 1] -> N x D x h x w standardised patch features."""
        maps = self.backbone_maps(x) if maps is None else maps
        return self.norm(self.features(maps, self.grid, x))

    def forward(self, x: torch.Tensor) -> TileOutputs:
        """Tiles -> :class:`~defectkit.core.results.TileOutputs` (the outputs
        :attr:`output_names` names; distances as written in
        :func:`~defectkit.fewshot.anomaly.nearest_distance`)."""
        maps = self.backbone_maps(x)
        feats = self.patch_features(x, maps)
        n, _, h, w = feats.shape
        patches = feats.flatten(2).transpose(1, 2)  # N x hw x D
        names = self.output_names
        distance = defect = embed = None
        if "distance" in names:
            distance = nearest_distance(patches, self.bank, self.bank_sqnorm).reshape(n, h, w)
        if "defect_distance" in names:
            defect = nearest_distance(patches, self.defect_bank, self.defect_sqnorm).reshape(n, h, w)
        if "embed" in names:
            embed = maps[EMBED_LAYER]
        return TileOutputs(features=feats, distance=distance, defect_distance=defect, embed=embed)


def _patch_layers(backbone: FeatureExtractor, layers: Sequence[str] | None) -> list:
    """The backbone maps that become patch features.

    ``embed`` (CLIP patch tokens in the text space) is there for the caption; it is a
    patch feature only when ``layers`` names it, or when it is the only map.
    """
    infos = list(backbone.feature_info)
    if layers is not None and EMBED_LAYER in layers:
        return infos
    rest = [i for i in infos if i.name != EMBED_LAYER]
    return rest or infos
