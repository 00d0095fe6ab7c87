"""Anomaly head: nearest-neighbour distance of every patch to a memory bank of good patches.

The bank is filled from the good shots and their augmentations (:mod:`.augment`) and
thinned with a greedy coreset when large (PatchCore, Roth et al. 2022). Distances are
written as matmuls - ``|a - b|^2 = 2 - 2 a.b`` for unit vectors - instead of
``torch.cdist``, which ONNX and OpenVINO convert poorly; because patch features are
unit length, the terms stay small and fp16 keeps enough precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def nearest_distance(patches: torch.Tensor, bank: torch.Tensor, bank_sqnorm: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distance of each patch to its nearest bank entry.

    Args:
        patches: N x P x D.
        bank: M x D.
        bank_sqnorm: M squared norms of the bank rows (precomputed once at fit).

    Returns:
        N x P distances.
    """
    if bank_sqnorm is None:
        bank_sqnorm = (bank * bank).sum(dim=1)
    # min_m |p - b_m|^2 = |p|^2 + min_m (|b_m|^2 - 2 p.b_m): one matmul, no cdist.
    cross = torch.matmul(patches, bank.t())
    nearest = (bank_sqnorm - 2.0 * cross).amin(dim=-1)
    sq = (patches * patches).sum(dim=-1) + nearest
    return torch.sqrt(torch.clamp(sq, min=0.0))


def greedy_coreset(
    features: torch.Tensor, size: int, *, seed: int = 0, projection_dim: int = 128
) -> torch.Tensor:
    """Indices of a greedy k-center coreset of ``features`` (M x D), ``size`` of them.

    Distances are computed in a random projection (as PatchCore does) so the cost is
    O(size * M * projection_dim); the first centre is drawn from ``seed``.
    """
    count = features.shape[0]
    if size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    if features.shape[1] > projection_dim:
        proj = torch.randn(features.shape[1], projection_dim, generator=generator)
        reduced = features @ (proj / math.sqrt(projection_dim))
    else:
        reduced = features
    first = int(torch.randint(count, (1,), generator=generator))
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = first
    min_dist = torch.linalg.vector_norm(reduced - reduced[first], dim=1)
    for i in range(1, size):
        nxt = int(torch.argmax(min_dist))
        chosen[i] = nxt
        min_dist = torch.minimum(min_dist, torch.linalg.vector_norm(reduced - reduced[nxt], dim=1))
    return chosen


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1 x 1 x k x k normalised Gaussian kernel, k = 2 * ceil(2 sigma) + 1."""
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k2 = torch.outer(g, g)
    return (k2 / k2.sum())[None, None]


def smooth(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """N x H x W -> N x H x W Gaussian-smoothed (replicate padding: borders stay honest)."""
    pad = kernel.shape[-1] // 2
    if not pad:
        return maps
    x = F.pad(maps[:, None], (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(x, kernel)[:, 0]


class AnomalyHead(nn.Module):
    """Two kinds of evidence against the good shots, each calibrated to "1 = as unusual as
    the most unusual good shot"; state lives in buffers (saved and exported).

    * appearance: nearest-neighbour distance of each patch to the memory bank (PatchCore);
    * detail excess: how far a patch's pixel-detail energy exceeds the good patches'
      (one-sided z-score, see :mod:`defectkit.inspect.features`). Symmetric NN distance
      dilutes "much more fine detail than anything good" among all the features; a
      one-sided statistic keeps it. When the features have no detail group it is off.

    The anomaly map is the larger of the two calibrated maps, so pixel values above 1
    mean "more unusual than any patch of the good shots". The image score is the largest
    of three calibrated statistics: the top patches of each map (local defects) and the
    mean detail excess (global texture changes, which raise every patch a little).

    Args:
        dim: patch feature dimension D.
        sigma: Gaussian smoothing of the maps, in patches (0 disables).
        top_fraction: the top statistics average this fraction of patches (at least one).
    """

    N_STATS = 3

    def __init__(self, dim: int, *, sigma: float = 1.0, top_fraction: float = 0.002) -> None:
        super().__init__()
        self.register_buffer("bank", torch.zeros(0, dim))
        self.register_buffer("bank_sqnorm", torch.zeros(0))
        self.register_buffer("kernel", gaussian_kernel(sigma) if sigma > 0 else torch.ones(1, 1, 1, 1))
        # references: [appearance pixel, detail pixel] and the three image statistics
        self.register_buffer("pixel_ref", torch.ones(2))
        self.register_buffer("stat_ref", torch.ones(self.N_STATS))
        self.top_fraction = top_fraction

    @property
    def fitted(self) -> bool:
        return self.bank.shape[0] > 0

    def set_bank(self, bank: torch.Tensor) -> None:
        self.bank = bank.detach().to(self.bank.dtype).contiguous()
        self.bank_sqnorm = (self.bank * self.bank).sum(dim=1)

    def raw_maps(
        self, features: torch.Tensor, detail_z: torch.Tensor | None, bank: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated smoothed maps (appearance, detail excess), each N x H x W.

        Args:
            features: N x D x H x W normalised patch features.
            detail_z: N x H x W detail z-score, or None (detail excess is then zero).
            bank: use this bank instead of the fitted one (leave-one-out at fit time).
        """
        n, _, h, w = features.shape
        patches = features.flatten(2).transpose(1, 2)  # N x HW x D
        if bank is None:
            dist = nearest_distance(patches, self.bank, self.bank_sqnorm)
        else:
            dist = nearest_distance(patches, bank)
        appearance = smooth(dist.reshape(n, h, w), self.kernel)
        if detail_z is None:
            excess = torch.zeros_like(appearance)
        else:
            excess = smooth(torch.clamp(detail_z, min=0.0), self.kernel)
        return appearance, excess

    def _top(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.flatten(1)
        k = max(1, int(round(flat.shape[1] * self.top_fraction)))
        return torch.topk(flat, k, dim=1).values.mean(dim=1)

    def statistics(self, appearance: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
        """Uncalibrated image statistics, N x 3: top appearance, top excess, mean excess."""
        return torch.stack([self._top(appearance), self._top(excess), excess.flatten(1).mean(dim=1)], dim=1)

    def calibrate(self, appearance: torch.Tensor, excess: torch.Tensor) -> None:
        """Set the references from leave-one-out maps of the good shots (N x H x W each)."""
        eps = 1e-6
        self.pixel_ref = torch.stack([appearance.amax(), excess.amax()]).clamp(min=eps)
        self.stat_ref = self.statistics(appearance, excess).amax(dim=0).clamp(min=eps)

    def forward(
        self, features: torch.Tensor, detail_z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N x D x H x W features -> (calibrated map N x H x W, image score N)."""
        appearance, excess = self.raw_maps(features, detail_z)
        return self.combine(appearance, excess)

    def combine(self, appearance: torch.Tensor, excess: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrate raw maps -> (map, score)."""
        amap = torch.maximum(appearance / self.pixel_ref[0], excess / self.pixel_ref[1])
        score = (self.statistics(appearance, excess) / self.stat_ref).amax(dim=1)
        return amap, score
