"""Inspector settings: a torch-free dataclass, so the CLI can build its flags cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from defectkit.core.predictor import BATCH_SIZE


@dataclass
class InspectorConfig:
    """Everything that defines an inspector besides the shots. CLI flags map onto these.

    Attributes:
        backbone: registry name (``inspect backbones`` lists them).
        weights: weights file, directory or tag; None = the backbone's default.
        layers: backbone maps to use; None = the backbone's default (shallow + mid).
        input_size: (H, W) images are resized to. None = the shots' own size when they
            all share one no larger than 512 x 512, else the backbone's default. Native
            size matters: resizing by a non-integer factor blurs pixel-level defects
            unevenly (benchmarks/results/tuning.md).
        pool_size: local pooling window of patch features (odd).
        detail: add the pixel-detail feature group (see defectkit.inspect.features).
        grid_stride: stride of the patch grid in input pixels; None = the finest map's.
            8 keeps 4-pixel detail (averaged into each patch) at a quarter of the cost
            of a stride-4 grid.
        bank_size: memory-bank patches kept after the greedy coreset.
        augmentations: augmented copies of each good shot added to the bank.
        sigma: Gaussian smoothing of the anomaly map, in patches.
        top_fraction: the "top patches" statistics average this fraction of the grid
            (at least one patch): small, because a local defect covers few patches.
        temperature: prototype-head softmax temperature (cosine / temperature).
        sharpness: how strongly region pooling concentrates on anomalous patches.
        batch_size: images per forward pass while fitting and predicting (the
            Predictor's, as for bundles).
        seed: seeds augmentation and coreset, so a fit is reproducible.
        vocabulary: caption terms added to the default vocabulary, one entry each in
            vocabulary-file form (``"burn mark"``, ``"attribute: dull"``); embedded with
            the text tower at fit time, so only for text-aligned backbones (open_clip).
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    layers: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None
    pool_size: int = 3
    grid_stride: int | None = 8
    detail: bool = True
    detail_weight: float | None = None
    bank_size: int = 2048
    augmentations: int = 7
    sigma: float = 1.0
    top_fraction: float = 0.002
    temperature: float = 0.05
    sharpness: float = 2.0
    batch_size: int = BATCH_SIZE
    seed: int = 0
    vocabulary: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InspectorConfig:
        data = dict(data)
        for key in ("layers", "input_size", "vocabulary"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


#: Largest native size used as-is when ``input_size`` is None (pixels per side).
MAX_NATIVE_SIZE = 512


def auto_input_size(images: Sequence[np.ndarray], default: tuple[int, int]) -> tuple[int, int]:
    """The shots' common size when they share one no larger than MAX_NATIVE_SIZE, else ``default``."""
    sizes = {im.shape[:2] for im in images}
    if len(sizes) == 1:
        (size,) = sizes
        if max(size) <= MAX_NATIVE_SIZE and min(size) >= 32:
            return size
    return tuple(default)
