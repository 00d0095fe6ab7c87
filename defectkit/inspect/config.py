"""Inspector settings: a torch-free dataclass, so the CLI can build its flags cheaply."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from defectkit.core.head import CONTRAST, DISTANCE
from defectkit.core.predictor import BATCH_SIZE
from defectkit.errors import ConfigError


@dataclass
class InspectorConfig:
    """Everything that defines an inspector besides the shots. CLI flags map onto these.

    Attributes:
        backbone: registry name (``inspect backbones`` lists them).
        weights: weights file, directory or tag; None = the backbone's default.
        layers: backbone maps to use; None = the backbone's default (shallow + mid).
        scale: model pixels per image pixel. 1.0 (default) works at native resolution:
            small defects keep their pixels. Lower it for images far larger than their
            defects (0.5 halves each side and quarters the time).
        tile_size: (H, W) of the fixed-size tiles the exported graph runs; None = chosen
            at fit from the shots (their largest scaled side, rounded up to 32 pixels;
            one tile up to a megapixel, else at most 512 a side). Larger images are
            tiled, never squashed.
        tile_margin: overlap between tiles, pixels kept clear of a tile's edges.
        roi: (x0, y0, x1, y1) region of interest in image pixels; None = the whole image.
            What lies outside (background, fixture, frame) is neither learned nor scored.
        standardize: standardise each feature channel on the good shots (robustly), so
            every layer weighs the same; False keeps the backbone's own channel scales.
        pool_size: local pooling window of patch features (odd).
        detail: add the pixel-detail feature group (see defectkit.inspect.features).
        grid_stride: stride of the patch grid in model pixels; None = the finest map's.
        bank_size: memory-bank patches kept after the greedy coreset (more good shots
            fill more of it; the distance computation grows with it).
        defect_bank_size: patches of the labelled defects kept for the contrast evidence.
        evidence: ``"distance"`` or ``"contrast"`` forces the anomaly evidence; None (the
            default) lets the fit keep the one that best separates the labelled defects
            from the good shots (see :mod:`defectkit.core.head`).
        augmentations: augmented copies of each good shot added to the bank.
        sigma: Gaussian smoothing of the anomaly map, in patches.
        top_fraction: the image score averages this fraction of the patches (at least
            one): small, because a local defect covers few patches.
        temperature: class-head temperature (logits are twice the linear classifier's
            score, about a cosine, over it; a head without a classifier: minus squared
            distances of unit descriptors over it, the same scale).
        sharpness: how strongly region pooling concentrates on anomalous patches.
        margin_weight: how much the class head's word counts in the image score (the
            anomaly score times exp(margin_weight x margin), the margin how far the
            likeliest defect type stands above ``good``; see
            ``defectkit.core.head.ClassHead.score_factor``). 0: the anomaly evidence
            alone, for data whose defect types go with something else in the shots
            (the material, a fixture). 0.5 was chosen on the development seeds of four
            data sets (benchmarks/results/fewshot_suite.md, stop 30).
        batch_size: tiles per forward pass while fitting and predicting.
        seed: seeds augmentation and coreset, so a fit is reproducible.
        vocabulary: caption terms added to the default vocabulary, one entry each in
            vocabulary-file form (``"burn mark"``, ``"attribute: dull"``); embedded with
            the text tower at fit time, so only for text-aligned backbones (open_clip).
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    layers: tuple[str, ...] | None = None
    scale: float = 1.0
    tile_size: tuple[int, int] | None = None
    tile_margin: int = 32
    roi: tuple[int, int, int, int] | None = None
    standardize: bool = True
    pool_size: int = 3
    grid_stride: int | None = 8
    detail: bool = True
    bank_size: int = 4096
    defect_bank_size: int = 1024
    evidence: str | None = None
    augmentations: int = 0
    sigma: float = 1.0
    top_fraction: float = 0.002
    temperature: float = 0.05
    sharpness: float = 2.0
    margin_weight: float = 0.5
    batch_size: int = BATCH_SIZE
    seed: int = 0
    vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # (anything else would be compared with no candidate and quietly fall back to distance)
        if self.evidence not in (None, DISTANCE, CONTRAST):
            raise ConfigError(
                f"evidence must be {DISTANCE!r}, {CONTRAST!r} or None (the fit chooses), got {self.evidence!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InspectorConfig:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in dict(data).items() if k in known}
        for key in ("layers", "tile_size", "roi", "vocabulary"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)
