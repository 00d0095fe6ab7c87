"""Anomaly head: nearest-neighbour distance of every patch to a memory bank of good patches.

The bank is filled from the good shots and their augmentations (:mod:`.augment`) and
thinned with a greedy coreset when large (PatchCore, Roth et al. 2022). Distances are
written as matmuls - ``|a - b|^2 = |a|^2 - 2 a.b + |b|^2`` - instead of ``torch.cdist``,
which ONNX and OpenVINO convert poorly. Patch features are not unit vectors: they are
standardised per channel on the good shots (:class:`defectkit.inspect.features.FeatureNorm`)
and scaled so a typical good patch has unit squared norm, which keeps the three terms
small enough for fp16.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

#: The grain reference is at least this many within-image standard errors of the grain
#: ratio, because between good images the ratio varies more than within one (the
#: measurements that chose 5 are in benchmarks/results/tuning.md).
GRAIN_FLOOR = 5.0
#: ... and never below this (ratio units, ~0.3 % of a typical ratio): a smaller change is
#: within what fp32 reductions in different engines disagree on once divided by it.
GRAIN_MIN_REF = 2e-3


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
    # Squared distances as one matrix-vector product per step (|r|^2 - 2 r.c + |c|^2):
    # the farthest point is the same up to rounding, and no M x D difference is built.
    sqnorm = (reduced * reduced).sum(dim=1)
    step = torch.empty_like(sqnorm)
    with _one_thread():
        min_sq = torch.clamp(sqnorm - 2.0 * (reduced @ reduced[first]) + sqnorm[first], min=0.0)
        for i in range(1, size):
            nxt = int(torch.argmax(min_sq))
            chosen[i] = nxt
            torch.mv(reduced, reduced[nxt], out=step)
            step.mul_(-2.0).add_(sqnorm).add_(sqnorm[nxt])
            torch.minimum(min_sq, step, out=min_sq)
    return chosen


@contextmanager
def _one_thread():
    """Run torch on one thread inside the block, then restore the count.

    The coreset loop is thousands of small ops; with several threads each op waits for
    the others to sync, and on a busy 2-core machine that made a 2048-of-12544 coreset
    take 17-25 s instead of 1-3 s (benchmarks/results/app_latency.md). The chosen
    indices are the same either way.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
    """Three kinds of evidence against the good shots, each calibrated to "1 = as unusual
    as the most unusual good shot"; state lives in buffers (saved and exported).

    * appearance (per patch): nearest-neighbour distance of each patch to the memory bank
      (PatchCore);
    * detail excess (per patch): how far a patch's pixel-detail energy exceeds the good
      patches' (one-sided z-score, see :mod:`defectkit.inspect.features`). Symmetric NN
      distance dilutes "much more fine detail than anything good" among all the
      features; a one-sided statistic keeps it. When the features have no detail group
      it is off;
    * grain deviation (per image): how far the image's grain ratio (1-px / 2-px
      differences, see :func:`defectkit.inspect.features.grain_ratio`) lies from the good
      shots' mean, in either direction (added noise raises it, blur lowers it).

    The anomaly map is the larger of the two calibrated per-patch maps, so pixel values
    above 1 mean "more unusual than any patch of the good shots". The image score is the
    largest of three calibrated statistics: the top patches of each map (local defects)
    and the grain deviation (global texture changes). An earlier third statistic, the
    mean detail excess over the image, also rose with global defects but varied as much
    with the contrast of good images; the grain ratio is contrast-free and replaced it
    (benchmarks/results/tuning.md).

    Two good shots say little about how far a *new* good image's grain strays, and their
    leave-one-out difference can be tiny by chance; so the grain reference is never below
    :data:`GRAIN_FLOOR` standard errors of the ratio, estimated within the good images
    (:func:`defectkit.inspect.features.grain_standard_error`).

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
        self.register_buffer("grain_center", torch.zeros(()))
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

    def statistics(
        self, appearance: torch.Tensor, excess: torch.Tensor, grain_dev: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Uncalibrated image statistics, N x 3: top appearance, top excess, grain
        deviation (zero when ``grain_dev`` is None)."""
        top = self._top(appearance)
        if grain_dev is None:
            grain_dev = torch.zeros_like(top)
        return torch.stack([top, self._top(excess), grain_dev], dim=1)

    def calibrate(
        self,
        appearance: torch.Tensor,
        excess: torch.Tensor,
        grain_dev: torch.Tensor | None = None,
        grain_floor: float = 0.0,
    ) -> None:
        """Set the references from leave-one-out maps of the good shots (N x H x W each)
        and their leave-one-out grain deviations (N), the grain reference at least
        ``grain_floor``."""
        eps = 1e-6
        self.pixel_ref = torch.stack([appearance.amax(), excess.amax()]).clamp(min=eps)
        ref = self.statistics(appearance, excess, grain_dev).amax(dim=0)
        ref[2] = torch.clamp(ref[2], min=max(grain_floor, GRAIN_MIN_REF))
        self.stat_ref = ref.clamp(min=eps)

    def set_grain_center(self, grains: torch.Tensor) -> None:
        """The good shots' grain ratios (N) -> their mean, the centre deviations count from."""
        self.grain_center = grains.detach().to(self.stat_ref.dtype).mean()

    def forward(
        self, features: torch.Tensor, detail_z: torch.Tensor | None = None, grain: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N x D x H x W features (+ detail z-scores, + grain ratios N) ->
        (calibrated map N x H x W, image score N)."""
        appearance, excess = self.raw_maps(features, detail_z)
        grain_dev = None if grain is None else (grain - self.grain_center).abs()
        return self.combine(appearance, excess, grain_dev)

    def combine(
        self, appearance: torch.Tensor, excess: torch.Tensor, grain_dev: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrate raw maps (and grain deviations) -> (map, score)."""
        amap = torch.maximum(appearance / self.pixel_ref[0], excess / self.pixel_ref[1])
        score = (self.statistics(appearance, excess, grain_dev) / self.stat_ref).amax(dim=1)
        return amap, score
