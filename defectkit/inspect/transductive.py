"""Transductive batch inspection: a folder scored against the fitted state *and* itself.

For re-inspecting an archive or a batch when the good shots are few: every image's
patches are also compared with the other images of the batch (mutual scoring, as for
unlabelled images at fit time, :mod:`defectkit.fewshot.mutual`), and a patch's distance
is the smaller of its distance to the fitted bank and its mutual score. Normal variation
the shots never showed but most of the batch shares stops counting as a defect; a defect
that only a few images have stays one. The calibration (references, threshold) is the
fitted one, so scores stay comparable with ``inspect predict``.

Two passes over the images (features are not kept between them, so memory stays flat
for any number of images): the first keeps each image's coreset of patches, the second
scores every image against :data:`~defectkit.fewshot.mutual.REFERENCES` others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from defectkit.core.predictor import inspection_result
from defectkit.core.results import InspectionResult
from defectkit.core.tiling import grid_to_image
from defectkit.errors import ConfigError
from defectkit.fewshot.mutual import REFERENCES, image_coresets, mutual_map, patch_rows

#: Images whose features go through the model together in each pass.
CHUNK = 16


def inspect_transductive(
    inspector,
    load: Callable[[int], np.ndarray],
    count: int,
    paths: Sequence[str | None] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[InspectionResult]:
    """Inspect ``count`` images (``load(i)`` reads image i) against the fitted state and
    each other.

    Args:
        inspector: a fitted :class:`~defectkit.inspect.inspector.Inspector` that gives
            verdicts (a type-only model has no distances to lower).
        load: reads image ``i`` (called twice per image: once per pass).
        count: how many images.
        paths: recorded in the results.
        progress: called with the number of images just done, after each chunk of each pass.
    """
    if not inspector.model.has_verdict:
        raise ConfigError(
            "--transductive needs a model that gives verdicts; a type-only model has none. "
            "Fit one from good shots or from unlabelled images (DATA/unlabelled/, no labels needed)"
        )
    if count < 2:
        raise ConfigError("--transductive compares the images with each other: give at least two")
    predictor, info = inspector.predictor, inspector.predictor.info
    seed = inspector.config.seed
    paths = list(paths) if paths is not None else [None] * count
    coresets: list[torch.Tensor] = []
    for start in range(0, count, CHUNK):
        chunk = [torch.from_numpy(g.features) for g, _ in predictor.grids([load(i) for i in range(start, min(count, start + CHUNK))])]
        coresets += [patch_rows(g)[keep].contiguous() for g, keep in zip(chunk, image_coresets(chunk, seed=seed), strict=True)]
        if progress:
            progress(min(count, start + CHUNK) - start)
    rng = np.random.default_rng(seed)
    results: list[InspectionResult] = []
    for start in range(0, count, CHUNK):
        images = [load(i) for i in range(start, min(count, start + CHUNK))]
        for k, (image, (grids, plan)) in enumerate(zip(images, predictor.grids(images), strict=True)):
            i = start + k
            others = [j for j in range(count) if j != i]
            drawn = rng.choice(others, size=min(REFERENCES, len(others)), replace=False)
            mutual = mutual_map(torch.from_numpy(grids.features), [coresets[int(j)] for j in drawn])
            raw, _ = info.head.outputs(
                features=grids.features, distance=np.minimum(grids.distance, mutual),
                defect_distance=grids.defect_distance, embed=grids.embed,
            )  # fmt: skip
            raw = raw._replace(anomaly_map=grid_to_image(raw.anomaly_map, info.tiles, plan))
            results.append(
                inspection_result(
                    raw, classes=info.classes, thresholds=info.thresholds, context=info.caption_context,
                    image=image, path=paths[i], timings={}, has_verdict=True,
                )  # fmt: skip
            )
        if progress:
            progress(len(images))
    return results
