"""The Inspector: frozen backbone + patch features + anomaly, prototype and caption heads.

``fit(support)`` fills registered buffers (memory bank, prototypes, vocabulary
embeddings) and computes the thresholds; ``forward(images)`` is pure tensor maths and is
exactly the graph the exporters export, with the outputs :attr:`Inspector.output_names`
names. Everything after the raw outputs is numpy
(:func:`defectkit.inspect.results.postprocess`), shared with the exported runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectkit.core.images import preprocess, resize_mask
from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample
from defectkit.errors import ConfigError, NotFittedError
from defectkit.fewshot.anomaly import GRAIN_FLOOR, AnomalyHead, greedy_coreset
from defectkit.fewshot.augment import augment_shots
from defectkit.fewshot.calibration import calibrate_threshold
from defectkit.fewshot.caption import CaptionContext
from defectkit.fewshot.caption_head import (
    EMBED_LAYER,
    CaptionHead,
    prototype_similarity,
    text_aligned,
)
from defectkit.fewshot.prototypes import PrototypeHead, anomaly_weights, region_descriptor
from defectkit.fewshot.support import SupportSet
from defectkit.fewshot.vocabulary import load_vocabulary
from defectkit.inspect.backbones import FeatureExtractor
from defectkit.inspect.config import InspectorConfig, auto_input_size
from defectkit.inspect.features import FeatureNorm, PatchFeatures, grain_ratio, grain_standard_error
from defectkit.inspect.results import (
    CORE_OUTPUTS,
    PROTOTYPE_SIMILARITY,
    VOCAB_SCORES,
    InspectionResult,
    Thresholds,
    postprocess,
)


@dataclass
class FitReport:
    """What fitting measured: per-shot scores, thresholds, timings (seconds)."""

    good_scores: list[float]
    defect_scores: dict[str, list[float]]
    thresholds: Thresholds
    bank_patches: int
    bank_size: int
    seconds: dict[str, float] = field(default_factory=dict)


class Inspector(nn.Module):
    """Few-shot inspector. ``forward`` takes N x 3 x H x W floats in [0, 1]."""

    def __init__(self, config: InspectorConfig | None = None, *, backbone: FeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config or InspectorConfig()
        if backbone is None:
            from defectkit.inspect.backbones import create_backbone

            # Text-aligned backbones also return ``embed`` for the caption head.
            backbone = create_backbone(
                self.config.backbone, weights=self.config.weights, layers=self.config.layers,
                text_embedding=True,
            )  # fmt: skip
        self.backbone = backbone
        if self.config.vocabulary and not text_aligned(backbone):
            raise ConfigError(
                f"{backbone.name} has no text tower, so it cannot score a vocabulary: drop "
                "--vocabulary, or choose a text-aligned backbone (open_clip, e.g. ViT-B-16)"
            )
        pre = self.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1))
        self.features = PatchFeatures(
            _patch_layers(self.backbone, self.config.layers),
            pool_size=self.config.pool_size,
            stride=self.config.grid_stride,
            detail=self.config.detail,
        )
        if self.backbone.fixed_input_size and self.config.input_size not in (None, pre.input_size):
            raise ConfigError(
                f"{self.backbone.name} only works at {pre.input_size[0]} x {pre.input_size[1]}; "
                "drop --input-size or choose a CNN backbone"
            )
        self._set_input_size(self.config.input_size or pre.input_size)
        self.norm = FeatureNorm(self.features.groups, detail_weight=self.config.detail_weight)
        self.anomaly = AnomalyHead(
            self.features.dim, sigma=self.config.sigma, top_fraction=self.config.top_fraction
        )
        self.prototypes = PrototypeHead(
            self.features.dim, temperature=self.config.temperature, sharpness=self.config.sharpness
        )
        self.caption = CaptionHead()
        self.classes: tuple[str, ...] = ()
        self.thresholds: Thresholds | None = None
        self.support_summary: dict = {}
        #: Shot classes and notes in prototype order, and the embedded vocabulary.
        self.caption_context = CaptionContext()
        self.eval()

    def _set_input_size(self, size: tuple[int, int]) -> None:
        self.input_size = (int(size[0]), int(size[1]))
        self.grid = self.features.grid_size(self.input_size)

    # ------------------------------------------------------------------ graph
    @property
    def fitted(self) -> bool:
        return self.anomaly.fitted and self.prototypes.fitted and self.thresholds is not None

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of :meth:`forward`'s outputs, in order (the exported graph's too)."""
        vocab = (VOCAB_SCORES,) if self.caption.active else ()
        return (*CORE_OUTPUTS, PROTOTYPE_SIMILARITY, *vocab)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in [0, 1] -> N x D x h x w standardised patch features."""
        return self._maps_and_features(x)[1]

    def _maps_and_features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        maps = self.backbone((x - self.mean) / self.std)
        return maps, self.norm(self.features(maps, self.grid, x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images -> the outputs :attr:`output_names` names.

        ``score`` N, ``anomaly_map`` N x H x W at input size, ``class_logits`` N x K,
        ``prototype_similarity`` N x P (one per labelled shot, larger = nearer; a class
        logit is the largest of its shots'), and with a vocabulary ``vocab_scores`` N x V
        (cosines of the region's CLIP embedding with each entry). The caption evidence
        pools the same anomaly-weighted region the class head pools.
        """
        maps, feats = self._maps_and_features(x)
        pmap, score = self.anomaly(feats, self.norm.detail_z(feats), self._grain(x))
        weights = anomaly_weights(pmap, self.prototypes.sharpness)
        desc = region_descriptor(feats, weights)
        logits = self.prototypes(desc)
        amap = F.interpolate(pmap[:, None], size=self.input_size, mode="bilinear", align_corners=False)[:, 0]
        outputs = (score, amap, logits, prototype_similarity(desc, self.prototypes))
        if self.caption.active:
            outputs += (self.caption(maps[EMBED_LAYER], weights),)
        return outputs

    # ------------------------------------------------------------------ helpers
    @torch.inference_mode()
    def _features_of(self, images: Sequence[np.ndarray], progress: Callable | None = None) -> torch.Tensor:
        out = []
        bs = self.config.batch_size
        for start in range(0, len(images), bs):
            batch = torch.from_numpy(preprocess(list(images[start : start + bs]), self.input_size))
            out.append(self.patch_features(batch))
            if progress:
                progress(len(batch))
        return torch.cat(out)

    def _mask_region(self, mask: np.ndarray) -> torch.Tensor:
        """H x W bool mask -> h x w 0/1: the patches it touches, grown by MASK_MARGIN."""
        m = torch.from_numpy(resize_mask(mask, self.input_size).astype(np.float32))[None, None]
        touched = F.adaptive_max_pool2d(m, self.grid)
        k = 2 * MASK_MARGIN + 1
        return F.max_pool2d(touched, k, stride=1, padding=MASK_MARGIN)[0, 0]

    # ------------------------------------------------------------------ fit
    @torch.inference_mode()
    def fit(self, support: SupportSet | Sequence[Sample], *, progress: bool = False) -> FitReport:
        """Fill the memory bank and prototypes from labelled shots and calibrate thresholds."""
        if not isinstance(support, SupportSet):
            support = SupportSet.from_samples(support)
        cfg = self.config
        t0 = time.perf_counter()
        groups = support.by_class()
        goods = groups[GOOD]
        good_images = [s.load_image() for s in goods]
        defect_shots = [s for s in support.shots if s.label != GOOD]
        defect_images = [s.load_image() for s in defect_shots]
        defect_masks = [s.load_mask() for s in defect_shots]
        t_load = time.perf_counter()

        if cfg.input_size is None and not self.backbone.fixed_input_size:
            self._set_input_size(auto_input_size(good_images + defect_images, self.backbone.preprocessing.input_size))
        self.norm.reset()
        aug_images, owner = augment_shots(good_images, cfg.augmentations, seed=cfg.seed)
        n_total = len(aug_images) + len(defect_images)
        bar = _progress_bar(n_total, "fit: features", enabled=progress)
        good_feats = self._features_of(aug_images, bar.update if bar else None)
        defect_feats = (
            self._features_of(defect_images, bar.update if bar else None)
            if defect_images
            else None
        )
        if bar:
            bar.close()
        t_feat = time.perf_counter()

        # Features were extracted with the identity norm: fit it on the good shots
        # and apply it to what was extracted, rather than running the backbone twice.
        self.norm.fit(good_feats)
        good_feats = self.norm(good_feats)
        if defect_feats is not None:
            defect_feats = self.norm(defect_feats)
        d = good_feats.shape[1]
        all_patches = good_feats.permute(0, 2, 3, 1).reshape(-1, d)
        per_image = self.grid[0] * self.grid[1]
        patch_owner = torch.tensor(owner).repeat_interleave(per_image)
        keep = greedy_coreset(all_patches, cfg.bank_size, seed=cfg.seed)
        self.anomaly.set_bank(all_patches[keep])
        t_bank = time.perf_counter()

        # Leave-one-out maps of the original good shots: how a *new* good part scores.
        # They calibrate the anomaly head, so 1.0 = as unusual as the worst good shot.
        originals = [owner.index(i) for i in range(len(goods))]
        appearance, excess = [], []
        for i, row in enumerate(originals):
            if len(goods) > 1:
                others = all_patches[patch_owner != i]
            else:  # a single shot: exclude only the un-augmented original
                image_of_patch = torch.arange(len(aug_images)).repeat_interleave(per_image)
                others = all_patches[image_of_patch != row]
            feats = good_feats[row : row + 1]
            a, e = self.anomaly.raw_maps(feats, self.norm.detail_z(feats), others)
            appearance.append(a)
            excess.append(e)
        appearance, excess = torch.cat(appearance), torch.cat(excess)
        grain_dev, grain_floor = self._fit_grain(good_images)
        self.anomaly.calibrate(appearance, excess, grain_dev, grain_floor)
        good_maps, good_scores = self.anomaly.combine(appearance, excess, grain_dev)

        classes = support.classes
        descs, labels = [], []
        for row, gmap in zip(originals, good_maps, strict=True):
            descs.append(self._descriptor(good_feats[row], gmap, None))
            labels.append(0)
        defect_scores: dict[str, list[float]] = {}
        if defect_feats is not None:
            dgrain = self._grain(torch.from_numpy(preprocess(defect_images, self.input_size)))
            dmaps, dscores = self.anomaly(defect_feats, self.norm.detail_z(defect_feats), dgrain)
            for shot, feats, dmap, mask, sc in zip(defect_shots, defect_feats, dmaps, defect_masks, dscores, strict=True):
                descs.append(self._descriptor(feats, dmap, mask))
                labels.append(classes.index(shot.label))
                defect_scores.setdefault(shot.label, []).append(float(sc))
        self.prototypes.set_prototypes(torch.stack(descs), torch.tensor(labels), len(classes))
        t_vocab = time.perf_counter()
        self.caption_context = self._fit_caption(shots=[*goods, *defect_shots])
        t_vocab = time.perf_counter() - t_vocab

        all_defects = [v for vals in defect_scores.values() for v in vals]
        image_thr = calibrate_threshold(good_scores.tolist(), all_defects)
        # Pixels: 1.0 is the highest any good patch reached (leave-one-out), but never
        # above the image threshold, so a defective verdict always shows a region.
        pixel_thr = min(1.0, image_thr)
        self.thresholds = Thresholds(image=image_thr, pixel=pixel_thr)
        self.classes = tuple(classes)
        self.support_summary = support.summary()
        t_end = time.perf_counter()
        return FitReport(
            good_scores=good_scores.tolist(),
            defect_scores=defect_scores,
            thresholds=self.thresholds,
            bank_patches=int(all_patches.shape[0]),
            bank_size=int(self.anomaly.bank.shape[0]),
            seconds={
                "load": t_load - t0,
                "features": t_feat - t_load,
                "coreset": t_bank - t_feat,
                "heads": t_end - t_bank - t_vocab,
                "vocabulary": t_vocab,
                "total": t_end - t0,
            },
        )

    def _grain(self, x: torch.Tensor) -> torch.Tensor | None:
        """Grain ratios of preprocessed images (N), or None without the detail group."""
        return grain_ratio(x) if self.features.detail else None

    def _fit_grain(self, good_images: Sequence[np.ndarray]) -> tuple[torch.Tensor | None, float]:
        """Centre the grain statistic on the good shots; return their leave-one-out
        deviations (N) and the floor of its reference (see :class:`AnomalyHead`)."""
        x = torch.from_numpy(preprocess(list(good_images), self.input_size))
        grains = self._grain(x)
        if grains is None:
            return None, 0.0
        self.anomaly.set_grain_center(grains)
        n = grains.shape[0]
        if n > 1:
            others_mean = (grains.sum() - grains) / (n - 1)
            deviation = (grains - others_mean).abs()
        else:
            deviation = torch.zeros_like(grains)
        floor = GRAIN_FLOOR * float(grain_standard_error(x).mean())
        return deviation, floor

    def _fit_caption(self, shots: Sequence[Sample]) -> CaptionContext:
        """Embed the vocabulary (text-aligned backbones only) and record the shots.

        ``shots`` in prototype order (the good shots, then the defect shots), so the
        columns of ``prototype_similarity`` name them.
        """
        vocabulary = load_vocabulary(self.config.vocabulary)
        active = self.caption.fit(self.backbone, vocabulary)
        return CaptionContext(
            shot_labels=tuple(s.label for s in shots),
            shot_notes=tuple(s.note or None for s in shots),
            vocabulary=tuple(vocabulary) if active else (),
        )

    def _descriptor(self, feats: torch.Tensor, pmap: torch.Tensor, mask: np.ndarray | None) -> torch.Tensor:
        # The same anomaly weighting as at inference (a prototype must be pooled the way
        # new images will be), kept near the painted region when there is one: the mask
        # says *where* the defect is, not how to pool it. Weights restricted to the mask
        # itself pooled shots more tightly than new images ever are (type accuracy 0.87
        # -> 0.83 on the synthetic caption benchmark's tuning seeds).
        weights = anomaly_weights(pmap[None], self.prototypes.sharpness)
        if mask is not None and mask.any():
            inside = weights * self._mask_region(mask)[None]
            if float(inside.sum()) > 1e-6:
                weights = inside
        return region_descriptor(feats[None], weights)[0]

    # ------------------------------------------------------------------ predict
    def set_threshold(self, image: float | None = None, pixel: float | None = None) -> None:
        """Move thresholds without refitting."""
        self._require_fitted()
        t = self.thresholds
        self.thresholds = Thresholds(
            image=t.image if image is None else float(image),
            pixel=t.pixel if pixel is None else float(pixel),
            min_defect_area=t.min_defect_area,
        )

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this inspector is not fitted: run `inspect fit` first")

    @torch.inference_mode()
    def raw(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Raw outputs for a list of images (numpy), batched, in :attr:`output_names` order:
        ``score, anomaly_map, class_logits`` first, then the caption evidence."""
        self._require_fitted()
        parts = []
        bs = self.config.batch_size
        for start in range(0, len(images), bs):
            x = torch.from_numpy(preprocess(list(images[start : start + bs]), self.input_size))
            parts.append([t.numpy() for t in self(x)])
        if not parts:
            with torch.inference_mode():
                probe = self(torch.zeros(1, 3, *self.input_size))
            return tuple(np.zeros((0, *t.shape[1:]), np.float32) for t in probe)
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def inspect(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8, any size) -> one result each.

        Same signature as the exported runtime's ``Bundle.inspect``.
        """
        paths = list(paths) if paths is not None else [None] * len(images)
        names = self.output_names
        results = []
        for image, path in zip(images, paths, strict=True):
            t0 = time.perf_counter()
            s, m, lg, *extra = self.raw([image])
            t1 = time.perf_counter()
            results.append(
                postprocess(
                    float(s[0]), m[0], lg[0], classes=self.classes, thresholds=self.thresholds,
                    image_size=image.shape[:2], path=path, timings={"model": (t1 - t0) * 1e3},
                    extras={n: e[0] for n, e in zip(names[3:], extra, strict=True)},
                    caption_context=self.caption_context, image=image,
                )
            )
        return results


#: Patches a painted mask is grown by before it limits a defect shot's pooling weights:
#: about the reach of the anomaly map's blur (3 x 3 pooling, Gaussian sigma 1 patch).
MASK_MARGIN = 2


def _patch_layers(backbone: FeatureExtractor, layers: Sequence[str] | None) -> list:
    """The backbone maps that become patch features.

    ``embed`` (CLIP patch tokens in the text space) is there for the caption head; it
    is a patch feature only when ``layers`` names it, or when it is the only map.
    """
    infos = list(backbone.feature_info)
    if layers is not None and EMBED_LAYER in layers:
        return infos
    rest = [i for i in infos if i.name != EMBED_LAYER]
    return rest or infos


def _progress_bar(total: int, desc: str, *, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)
