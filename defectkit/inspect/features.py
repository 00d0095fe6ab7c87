"""Patch features: chosen backbone maps aligned to one grid, locally pooled, L2-normalised.

Shallow layers carry the high-frequency detail that small defects live in (a 10 px
noise patch on textile barely survives stride 16), deeper layers carry context. Each
layer is pooled over a small neighbourhood (PatchCore's local aggregation, which makes
a patch robust to one-pixel shifts), resized to the common grid, normalised on its own
so no layer dominates by channel count, concatenated, and scaled to unit length.

Unit-length patches keep nearest-neighbour distances in [0, 4] and let the anomaly head
write ``|a - b|^2 = 2 - 2 a.b`` as one matmul, which exports cleanly and stays precise in
fp16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from defectkit.errors import ConfigError
from defectkit.inspect.backbones import FeatureInfo


class PatchFeatures(nn.Module):
    """Named NCHW maps -> N x D x H x W unit-length patch features.

    Args:
        feature_info: the maps the backbone returns (name, channels, stride).
        pool_size: side of the local average pooling window (odd; 1 disables it).
        stride: stride of the output grid in input pixels; defaults to the smallest
            stride among the maps, so the shallowest layer keeps its full resolution.
    """

    def __init__(
        self,
        feature_info: Sequence[FeatureInfo],
        *,
        pool_size: int = 3,
        stride: int | None = None,
        unit_norm: bool = True,
    ) -> None:
        super().__init__()
        if not feature_info:
            raise ConfigError("patch features need at least one backbone layer")
        if pool_size < 1 or pool_size % 2 == 0:
            raise ConfigError(f"pool_size must be an odd number >= 1, got {pool_size}")
        self.names = [info.name for info in feature_info]
        self.pool_size = pool_size
        self.stride = stride or min(info.stride for info in feature_info)
        self.dim = sum(info.channels for info in feature_info)
        self.unit_norm = unit_norm
        self._scale = len(feature_info) ** -0.5

    def grid_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the patch grid for an input of ``input_size`` = (H, W)."""
        return input_size[0] // self.stride, input_size[1] // self.stride

    def forward(self, maps: dict[str, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """Align, pool and normalise.

        Args:
            maps: ``{name: N x C_i x h_i x w_i}`` from the backbone.
            grid: output (H, W); pass :meth:`grid_size` of the input so the graph has
                static sizes (dynamic ``interpolate`` sizes export poorly).

        Returns:
            N x D x H x W, each patch vector of unit L2 norm.
        """
        parts = []
        pad = self.pool_size // 2
        for name in self.names:
            fmap = maps[name]
            if self.pool_size > 1:
                # count_include_pad=False: border patches are not darkened by zero padding.
                fmap = F.avg_pool2d(
                    fmap, self.pool_size, stride=1, padding=pad, count_include_pad=False
                )
            h, w = fmap.shape[-2:]
            if (h, w) != tuple(grid):
                if h > grid[0]:  # finer than the grid: average, so detail is summarised, not skipped
                    fmap = F.adaptive_avg_pool2d(fmap, grid)
                else:
                    fmap = F.interpolate(fmap, size=grid, mode="bilinear", align_corners=False)
            parts.append(F.normalize(fmap, dim=1) * self._scale if self.unit_norm else fmap)
        return torch.cat(parts, dim=1)
