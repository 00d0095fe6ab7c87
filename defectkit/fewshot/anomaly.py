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


class AnomalyHead(nn.Module):
    """Memory bank + nearest-neighbour scoring; state lives in buffers (saved and exported).

    Args:
        dim: patch feature dimension D.
        sigma: Gaussian smoothing of the patch-level map, in patches (0 disables).
        top_fraction: the image score is the mean of the top ``top_fraction`` of the
            smoothed map: the max alone (PatchCore) is noisier with few shots, and a mean
            over a few patches also rises for global texture changes.
    """

    def __init__(self, dim: int, *, sigma: float = 1.0, top_fraction: float = 0.01) -> None:
        super().__init__()
        self.register_buffer("bank", torch.zeros(0, dim))
        self.register_buffer("bank_sqnorm", torch.zeros(0))
        self.register_buffer("kernel", gaussian_kernel(sigma) if sigma > 0 else torch.ones(1, 1, 1, 1))
        self.top_fraction = top_fraction

    @property
    def fitted(self) -> bool:
        return self.bank.shape[0] > 0

    def set_bank(self, bank: torch.Tensor) -> None:
        self.bank = bank.detach().to(self.bank.dtype).contiguous()
        self.bank_sqnorm = (self.bank * self.bank).sum(dim=1)

    def patch_map(self, features: torch.Tensor, bank: torch.Tensor | None = None) -> torch.Tensor:
        """N x D x H x W features -> N x H x W smoothed distance map (patch grid)."""
        n, d, h, w = features.shape
        patches = features.flatten(2).transpose(1, 2)  # N x HW x D
        if bank is None:
            dist = nearest_distance(patches, self.bank, self.bank_sqnorm)
        else:
            dist = nearest_distance(patches, bank)
        dist = dist.reshape(n, 1, h, w)
        pad = self.kernel.shape[-1] // 2
        if pad:
            # Replicate padding keeps border patches from looking artificially normal.
            dist = F.conv2d(F.pad(dist, (pad, pad, pad, pad), mode="replicate"), self.kernel)
        return dist[:, 0]

    def image_score(self, patch_map: torch.Tensor) -> torch.Tensor:
        """N x H x W -> N: mean of the top fraction of patches (at least one)."""
        flat = patch_map.flatten(1)
        k = max(1, int(round(flat.shape[1] * self.top_fraction)))
        return torch.topk(flat, k, dim=1).values.mean(dim=1)
