"""Memory banks: nearest-neighbour distance of every patch to a bank of patches.

The good bank is filled from the good shots (and unlabelled images judged good) and
thinned with a greedy coreset when large (PatchCore, Roth et al. 2022); the defect bank
holds the labelled defects' patches. Distances are
written as matmuls - ``|a - b|^2 = |a|^2 - 2 a.b + |b|^2`` - instead of ``torch.cdist``,
which ONNX and OpenVINO convert poorly. Patch features are not unit vectors: they are
standardised per channel on the good shots (:class:`defectkit.inspect.features.FeatureNorm`)
and scaled so a typical good patch has unit squared norm, which keeps the three terms
small enough for fp16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def tracing() -> bool:
    """Whether the code runs to be exported (``torch.export``/dynamo or TorchScript
    tracing), where only the plain graph is wanted: eager-only speed-ups step aside."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


#: Patches whose distances are computed at once: their P x M block of cross terms (8 MB
#: for a 2048-entry bank, 16 MB for 4096) stays in the processor's cache while it is
#: written, offset and reduced, instead of one 140 MB matrix for a 1130 x 460 image's
#: 8640 patches going through memory three times (PyTorch on 2 cores: 90 -> 47 ms
#: against a 4096-entry bank). Each row's numbers are the same either way.
ROWS = 1024
#: Distances below this are returned as this. Where a patch matches a bank entry (the
#: fit's own shots, as the export's self-check inspects them) the large terms of the
#: matmul form cancel, and float32 rounding of them (about 1e-7 of |a|^2 + |b|^2, up to
#: 1e-5 for the most unusual patches) becomes up to ~3e-3 after the square root, which
#: each engine rounds its own way; contrast divides by that distance, so it moved a
#: check image's score (1.4-1.9) by up to 0.16 % between ONNX Runtime and PyTorch.
#: 0.02 is far below any distance between two different patches (a good part's patches
#: lie 0.3-1.5 from the bank: features are scaled so a typical good patch has unit
#: squared norm).
FLOOR = 0.02


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
    # Row blocks: the same numbers, bit for bit, twice as fast in PyTorch. Not in an
    # exported graph: OpenVINO runs the one matmul as fast as the blocks.
    if not tracing() and patches.shape[-2] > ROWS:
        blocks = torch.split(patches, ROWS, dim=-2)
        return torch.cat([nearest_distance(b, bank, bank_sqnorm) for b in blocks], dim=-1)
    # min_m |p - b_m|^2 = |p|^2 + min_m (|b_m|^2 - 2 p.b_m), no cdist. The -2 goes on
    # the M x D bank (exact: a power of two), the norms are added in place: the P x M
    # matrix is written once and updated once instead of three times (twice as fast on
    # the CPU, bit for bit the same). A fused addmm is as fast here but exports as a
    # Gemm whose rounding OpenVINO varies with its thread count.
    cross = torch.matmul(patches, (-2.0 * bank).t())
    nearest = cross.add_(bank_sqnorm).amin(dim=-1)
    sq = (patches * patches).sum(dim=-1) + nearest
    return torch.sqrt(torch.clamp(sq, min=FLOOR * FLOOR))


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


def greedy_coresets(features: Sequence[torch.Tensor], size: int, *, seed: int = 0) -> list[torch.Tensor]:
    """:func:`greedy_coreset` of each of many feature sets (the same indices), side by
    side: the loops are independent, so each runs on one thread and one core while the
    others run on the rest (a fit's 100 line images: 6.9 -> 4 s on 2 cores)."""
    workers = min(torch.get_num_threads(), len(features))
    if workers <= 1:
        return [greedy_coreset(f, size, seed=seed) for f in features]
    with _one_thread(), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda f: greedy_coreset(f, size, seed=seed), features))


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
