"""Mutual scoring of unlabelled images: which of them look good, patch by patch.

After MuSc (Li et al., ICLR 2024): a line's unlabelled images are mostly good, and a
defect is rare *across images*, so a patch is normal when it has a close match in a
good share of the *other* images, and anomalous when only a few (or none) have one.
Each patch's score is the mean of its nearest-patch distances to the closest
:data:`QUANTILE` of the other images; an image whose most unusual patches stand far
above the rest of the set is judged a defect and kept out of the memory bank.

Cost is bounded whatever the number of images: each image is summarised by a greedy
coreset of :data:`PATCHES_PER_IMAGE` of its patches, and each is compared with at most
:data:`REFERENCES` others (drawn with the seed), so scoring N images costs
N x patches x REFERENCES x PATCHES_PER_IMAGE distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from defectkit.core.head import edge_factors, edge_scaled
from defectkit.fewshot.anomaly import greedy_coresets, nearest_distance

#: Coreset patches kept per image as what it can offer the others (and the bank).
PATCHES_PER_IMAGE = 256
#: Other images each image is compared with (a random draw when there are more).
REFERENCES = 16
#: A patch's score averages its distances to this share of the other images, the
#: closest ones (MuSc's interval-averaging): robust to a defect type that recurs in a
#: few images, as long as it is in fewer than this share.
QUANTILE = 0.3


@dataclass
class MutualScores:
    """Per image: the patch map of mutual scores (h x w) and its coreset (K x D)."""

    maps: list[np.ndarray] = field(repr=False)
    coresets: list[torch.Tensor] = field(repr=False)
    coreset_index: list[torch.Tensor] = field(repr=False)


def patch_rows(grid: torch.Tensor) -> torch.Tensor:
    """D x h x w grid -> (h w) x D patches."""
    return grid.flatten(1).t()


def image_coresets(grids: Sequence[torch.Tensor], per_image: int = PATCHES_PER_IMAGE, *, seed: int = 0) -> list[torch.Tensor]:
    """Flat indices of a greedy coreset of each grid's patches: what it offers the others."""
    return greedy_coresets([patch_rows(grid) for grid in grids], per_image, seed=seed)


def mutual_map(grid: torch.Tensor, references: Sequence[torch.Tensor], quantile: float = QUANTILE) -> np.ndarray:
    """One grid's mutual patch scores (h x w): per patch, the mean of its nearest-patch
    distances to the closest ``quantile`` share of the ``references`` (coresets, K x D)."""
    h, w = grid.shape[1:]
    if not references:
        return np.zeros((h, w), np.float32)
    query = patch_rows(grid)[None]
    dist = torch.stack([nearest_distance(query, ref)[0] for ref in references], dim=1)
    k = max(1, int(round(quantile * len(references))))
    return dist.topk(k, dim=1, largest=False).values.mean(dim=1).reshape(h, w).numpy()


def mutual_scores(
    grids: Sequence[torch.Tensor],
    *,
    references: Sequence[int] = (),
    per_image: int = PATCHES_PER_IMAGE,
    n_references: int = REFERENCES,
    quantile: float = QUANTILE,
    seed: int = 0,
) -> MutualScores:
    """Mutual patch scores of standardised grids (D x h x w each), edges discounted.

    A patch on an image's outer rings sees the backbone's padding and few look-alikes,
    so it lies farther from the others' coresets than an inner patch even on a good
    image; the images are mostly good, so their own maps say how much farther: each
    ring is divided by its factor over all the maps (:func:`defectkit.core.head.edge_factors`),
    as the fitted scoring does with the good shots' factors. Otherwise the image edges
    set every image's score and a defect inside stands out less.

    Args:
        grids: the images' patch grids.
        references: indices of grids known to be good (labelled good shots): always
            among every image's references.
        per_image: coreset size per image.
        n_references: how many other images each image is compared with.
        quantile: share of the closest references averaged per patch.
        seed: draws the coresets' first centres and the references.
    """
    index = image_coresets(grids, per_image, seed=seed)
    coresets = [patch_rows(grid)[keep].contiguous() for grid, keep in zip(grids, index, strict=True)]
    rng = np.random.default_rng(seed)
    known = [int(r) for r in references]
    maps = []
    for i, grid in enumerate(grids):
        fixed = [j for j in known if j != i]
        pool = [j for j in range(len(grids)) if j != i and j not in fixed]
        extra = max(0, n_references - len(fixed))
        drawn = list(rng.choice(pool, size=min(extra, len(pool)), replace=False)) if pool else []
        others = fixed + [int(j) for j in drawn]
        maps.append(mutual_map(grid, [coresets[j] for j in others], quantile))
    edges = edge_factors(maps)
    return MutualScores(maps=[edge_scaled(m, edges) for m in maps], coresets=coresets, coreset_index=index)


def outliers(scores: Sequence[float], *, spread: float) -> np.ndarray:
    """Which image scores stand out above the rest: log score above the median by more
    than ``spread`` robust standard deviations (1.4826 x the median absolute deviation)."""
    logs = np.log(np.maximum(np.asarray(scores, dtype=np.float64), 1e-9))
    if logs.size < 3:
        return np.zeros(logs.size, dtype=bool)
    med = float(np.median(logs))
    mad = max(1.4826 * float(np.median(np.abs(logs - med))), 1e-3)
    return logs > med + spread * mad
