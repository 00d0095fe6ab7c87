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
    """N x 3 x H x W in [0, 1] -> N x 3 x H x W high-pass energy |x - box3(x)|."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    return (image - F.avg_pool2d(padded, 3, stride=1)).abs()


def _mean_hw(t: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C mean, summed row by row: a single reduction over the whole
    image (OpenVINO fuses two means into one) accumulates ~1e-5 relative error in fp32,
    which the grain statistic's small reference would amplify past the export self-check."""
    return F.avg_pool2d(t, kernel_size=(1, t.shape[-1])).mean(dim=(2, 3))


def _abs_diff_ratio(image: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C: mean |1-px difference| / mean |2-px difference| (x and y)."""
    d1 = _mean_hw((image[..., 1:] - image[..., :-1]).abs()) + _mean_hw((image[..., 1:, :] - image[..., :-1, :]).abs())
    d2 = _mean_hw((image[..., 2:] - image[..., :-2]).abs()) + _mean_hw((image[..., 2:, :] - image[..., :-2, :]).abs())
    return (d1 + 1e-6) / (d2 + 1e-6)


def grain_ratio(image: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> N: the image's *grain*, the ratio of its 1-pixel to its
    2-pixel mean absolute differences (averaged over colour channels).

    Smooth structure changes as much over 2 pixels as over 1 (ratio near 0.5); white
    noise changes as much over 1 pixel as over 2 (ratio 1). So added grain or noise
    raises the ratio and blur lowers it, whatever the image's contrast or brightness,
    which scale both differences alike. On the textile benchmark this single number
    separates good surfaces from globally defective ones completely (image AUROC 1.0 over
    all 1,000 good and 500 global images), where detail energy alone overlaps: good
    images differ in contrast.
    """
    return _abs_diff_ratio(image).mean(dim=1)


def grain_standard_error(image: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W -> N: standard error of :func:`grain_ratio`, estimated from how much
    the ratio varies between the image's four quadrants (std of the four / 2)."""
    h, w = image.shape[-2] // 2, image.shape[-1] // 2
    quads = [image[..., i : i + h, j : j + w] for i in (0, h) for j in (0, w)]
    values = torch.stack([grain_ratio(q) for q in quads], dim=1)  # N x 4
    return values.std(dim=1) / 2.0


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

    After it, every group contributes on average 1 / n_groups to a good patch's squared
    norm, whatever its channel count, so 3 detail channels weigh as much as 112 deep ones.
    """

    def __init__(self, groups: Sequence[tuple[str, int]], *, detail_weight: float | None = None) -> None:
        super().__init__()
        dim = sum(c for _, c in groups)
        self.groups = list(groups)
        self.detail_weight = detail_weight
        self.register_buffer("mean", torch.zeros(1, dim, 1, 1))
        self.register_buffer("scale", torch.ones(1, dim, 1, 1))
        self.register_buffer("weight", torch.ones(1, dim, 1, 1))

    def reset(self) -> None:
        """Back to the identity, so features can be extracted raw before :meth:`fit`."""
        self.mean = torch.zeros_like(self.mean)
        self.scale = torch.ones_like(self.scale)
        self.weight = torch.ones_like(self.weight)

    @torch.no_grad()
    def fit(self, feats: torch.Tensor) -> None:
        """Learn mean and scale from N x D x H x W features of good images."""
        flat = feats.transpose(0, 1).flatten(1)  # D x (N H W)
        mean = flat.mean(dim=1)
        std = flat.std(dim=1).clamp(min=1e-6)
        n = len(self.groups)
        share = {name: 1.0 / n for name, _ in self.groups}
        if self.detail_weight is not None and DETAIL in share and n > 1:
            share = {name: (1 - self.detail_weight) / (n - 1) for name in share}
            share[DETAIL] = self.detail_weight
        weight = torch.cat([torch.full((c,), (share[name] / c) ** 0.5) for name, c in self.groups])
        self.mean = mean.view(1, -1, 1, 1)
        self.scale = (weight / std).view(1, -1, 1, 1)
        self.weight = weight.view(1, -1, 1, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) * self.scale

    def detail_z(self, normalised: torch.Tensor) -> torch.Tensor | None:
        """N x D x H x W normalised features -> N x H x W z-score of pixel detail
        (mean over the detail channels of (x - mean) / std), or None without that group."""
        names = [name for name, _ in self.groups]
        if DETAIL not in names:
            return None
        start = sum(c for _, c in self.groups[: names.index(DETAIL)])
        stop = start + dict(self.groups)[DETAIL]
        return (normalised[:, start:stop] / self.weight[:, start:stop]).mean(dim=1)
