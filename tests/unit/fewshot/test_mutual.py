"""Mutual scoring of unlabelled images (issue 16): the edges of every map are discounted
by what the images' own maps show, so an image edge does not set every image's score and
a defect inside still stands out."""

from __future__ import annotations

import numpy as np
import torch

from defectkit.core.head import edge_cells
from defectkit.fewshot.mutual import mutual_map, mutual_scores, outliers


def _grids(n=12, size=12, dim=8, seed=0):
    """Grids whose two outer rings vary three times as much as the inside (as edge
    patches do behind the backbone's padding); image 0 has one planted inner defect."""
    rng = np.random.default_rng(seed)
    spread = np.where(edge_cells((size, size)) < 2, 3.0, 1.0)
    grids = [rng.normal(size=(dim, size, size)) * spread for _ in range(n)]
    grids[0][:, 6, 5] += 4.0
    return [torch.from_numpy(g.astype(np.float32)) for g in grids]


def _ring_ratio(maps):
    rings = edge_cells(maps[0].shape)
    edge = np.median(np.concatenate([m[rings == 0] for m in maps]))
    inner = np.median(np.concatenate([m[rings == 2] for m in maps]))
    return edge / inner


def test_edges_are_discounted_and_an_inner_defect_still_stands_out():
    grids = _grids()
    scores = mutual_scores(grids, seed=0)
    raw = [mutual_map(g, [c for j, c in enumerate(scores.coresets) if j != i]) for i, g in enumerate(grids)]
    assert _ring_ratio(raw) > 1.5  # undiscounted, the outer ring runs far above the inside
    assert abs(_ring_ratio(scores.maps) - 1.0) < 0.05
    # the planted patch is its image's most unusual, and only that image stands out
    # (undiscounted, an edge patch of image 0 is its most unusual and nothing stands out)
    assert np.unravel_index(raw[0].argmax(), (12, 12)) != (6, 5)
    assert not outliers([float(m.max()) for m in raw], spread=3.0).any()
    assert np.unravel_index(scores.maps[0].argmax(), (12, 12)) == (6, 5)
    tops = [float(m.max()) for m in scores.maps]
    assert outliers(tops, spread=3.0).tolist() == [True] + [False] * (len(grids) - 1)
