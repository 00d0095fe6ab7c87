"""Patch features: backbone maps and a pixel-detail map aligned to one grid, standardised.

Shallow layers carry the high-frequency detail small defects live in, deeper layers
carry context. Each backbone map is pooled over a small neighbourhood (PatchCore's local
aggregation: robust to one-pixel shifts) and resized to the common grid.

A fixed *detail* group sits beside them: per colour channel, the mean absolute
difference between the image and its 3 x 3 box blur, averaged over each grid cell. On
the textile benchmark the local defects are 10-15 px patches of pixel noise that an
ImageNet CNN smooths away after a resize, while this high-pass energy separates them
perfectly (image AUROC 1.0 alone, see benchmarks/results); it costs three channels.

Features are then standardised per channel with statistics of the good shots
(:class:`FeatureNorm`), each group weighted equally, and scaled so a typical patch has
unit squared norm. Keeping magnitudes (instead of L2-normalising each patch) matters:
"this patch has far more fine detail than any good patch" is a magnitude, which a
per-patch unit norm throws away. Small, standardised terms keep the matmul distances of
the anomaly head precise in fp16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from defectkit.errors import ConfigError
from defectkit.inspect.backbones import FeatureInfo

DETAIL = "detail"
DETAIL_CHANNELS = 3


def _to_grid(fmap: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    h, w = fmap.shape[-2:]
    if (h, w) == tuple(grid):
        return fmap
    if h > grid[0]:  # finer than the grid: average, so detail is summarised, not skipped
        windows = _uniform_windows(h, grid[0]), _uniform_windows(w, grid[1])
        if None not in windows:  # the same windows as a plain pooling: export that
            (kh, sh), (kw, sw) = windows
            return F.avg_pool2d(fmap, (kh, kw), stride=(sh, sw))
        return F.adaptive_avg_pool2d(fmap, grid)
    return F.interpolate(fmap, size=grid, mode="bilinear", align_corners=False)


def _uniform_windows(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) when adaptive average pooling from ``size`` to ``out`` uses
    windows of one size at a fixed stride, else None.

    For the default grid (249 px input, stride 8) every map qualifies, and a plain
    pooling exports as one pooling node; adaptive pooling exports as a gather and a
    mean that OpenVINO runs with reference kernels (~20 % of the model's time).
    """
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    kernels = {e - s for s, e in zip(starts, ends, strict=True)}
    stride = starts[1] - starts[0] if out > 1 else 1
    if len(kernels) != 1 or any(s != i * stride for i, s in enumerate(starts)):
        return None
    return kernels.pop(), stride


def detail_map(image: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> N x 3 x H x W high-pass energy |x - box3(x)|.

    Each channel is filtered as a one-channel image (the channels folded into the batch):
    the same numbers, and OpenVINO keeps one-channel maps in their plain layout instead
    of copying the three-channel full-resolution image into 16-channel blocks and back
    (a 4096 x 256 scan's graph 255-265 -> 238-252 ms on 2 cores)."""
    n, c, h, w = image.shape
    flat = image.reshape(n * c, 1, h, w)
    padded = F.pad(flat, (1, 1, 1, 1), mode="replicate")
    return (flat - F.avg_pool2d(padded, 3, stride=1)).abs().reshape(n, c, h, w)


class PatchFeatures(nn.Module):
    """Named NCHW maps (+ the image, for the detail group) -> N x D x H x W raw features.

    Args:
        feature_info: the maps the backbone returns (name, channels, stride).
        pool_size: side of the local average pooling window (odd; 1 disables it).
        stride: stride of the output grid in input pixels; defaults to the smallest
            stride among the maps.
        detail: add the pixel-detail group (3 channels).
    """

    def __init__(
        self,
        feature_info: Sequence[FeatureInfo],
        *,
        pool_size: int = 3,
        stride: int | None = None,
        detail: bool = True,
    ) -> None:
        super().__init__()
        if not feature_info:
            raise ConfigError("patch features need at least one backbone layer")
        if pool_size < 1 or pool_size % 2 == 0:
            raise ConfigError(f"pool_size must be an odd number >= 1, got {pool_size}")
        self.names = [info.name for info in feature_info]
        self.pool_size = pool_size
        self.stride = stride or min(info.stride for info in feature_info)
        self.detail = detail
        self.groups: list[tuple[str, int]] = [(i.name, i.channels) for i in feature_info]
        if detail:
            self.groups.append((DETAIL, DETAIL_CHANNELS))
        self.dim = sum(c for _, c in self.groups)

    def grid_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the patch grid for an input of ``input_size`` = (H, W)."""
        return input_size[0] // self.stride, input_size[1] // self.stride

    def forward(
        self, maps: dict[str, torch.Tensor], grid: tuple[int, int], image: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Align and pool.

        Args:
            maps: ``{name: N x C_i x h_i x w_i}`` from the backbone.
            grid: output (H, W); pass :meth:`grid_size` of the input so the graph has
                static sizes (dynamic ``interpolate`` sizes export poorly).
            image: N x 3 x H x W in [0, 1]; required when ``detail`` is on.

        Returns:
            N x D x H x W, groups in the order of ``self.groups``.
        """
        parts = []
        pad = self.pool_size // 2
        for name in self.names:
            fmap = maps[name]
            if self.pool_size > 1:
                # count_include_pad=False: border patches are not darkened by zero padding.
                fmap = F.avg_pool2d(fmap, self.pool_size, stride=1, padding=pad, count_include_pad=False)
            parts.append(_to_grid(fmap, grid))
        if self.detail:
            if image is None:
                raise ValueError("the detail group needs the input image")
            parts.append(_to_grid(detail_map(image), grid))
        return torch.cat(parts, dim=1)


class FeatureNorm(nn.Module):
    """Per-channel standardisation fitted on good patches, each group weighted equally.

    Robust statistics (median, and the interquartile range over 1.349, the standard
    deviation of a normal distribution with that spread): a frame, a fixture edge or a
    glint covers a few percent of the patches, and a plain standard deviation stretched
    by them shrinks every other patch's variation. After it, every group contributes on
    average 1 / n_groups to a good patch's squared norm, whatever its channel count.
    """

    def __init__(self, groups: Sequence[tuple[str, int]]) -> None:
        super().__init__()
        dim = sum(c for _, c in groups)
        self.groups = list(groups)
        self.register_buffer("mean", torch.zeros(1, dim, 1, 1))
        self.register_buffer("scale", torch.ones(1, dim, 1, 1))

    def reset(self) -> None:
        """Back to the identity, so features can be extracted raw before :meth:`fit`."""
        self.mean = torch.zeros_like(self.mean)
        self.scale = torch.ones_like(self.scale)

    @torch.no_grad()
    def fit(self, patches: torch.Tensor, *, seed: int = 0, sample: int = 200_000, standardize: bool = True) -> None:
        """Learn centre and scale from M x D patch features of good images (a seeded
        sample of ``sample`` patches when there are more). ``standardize=False`` keeps
        the backbone's own channel scales (one global factor only, PatchCore's metric)."""
        if patches.shape[0] > sample:
            g = torch.Generator().manual_seed(seed)
            patches = patches[torch.randperm(patches.shape[0], generator=g)[:sample]]
        flat = patches.t().float()  # D x M
        q = torch.quantile(flat, torch.tensor([0.25, 0.5, 0.75]), dim=1)
        spread = ((q[2] - q[0]) / 1.349).clamp(min=1e-6)
        n = len(self.groups)
        weight = torch.cat([torch.full((c,), (1.0 / n / c) ** 0.5) for _, c in self.groups])
        self.mean = q[1].view(1, -1, 1, 1)
        if standardize:
            self.scale = (weight / spread).view(1, -1, 1, 1)
        else:  # one factor: a typical good patch at unit squared norm
            typical = ((flat - q[1][:, None]) ** 2).sum(dim=0).median().clamp(min=1e-12)
            self.scale = torch.full_like(self.mean, float(typical) ** -0.5)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) * self.scale
