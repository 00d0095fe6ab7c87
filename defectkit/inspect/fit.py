"""Fitting beside the model: labelled shots -> the buffers of an InspectorModel.

``fit(model, support)`` extracts patch features of the good shots (and augmented
copies), fits the feature standardisation, fills the memory bank (greedy coreset),
calibrates the anomaly head on leave-one-out maps of the good shots, pools one
prototype per labelled shot, embeds the caption vocabulary (text-aligned backbones) and
sets the thresholds. The model's ``forward`` is untouched by any of it, so what is
exported is pure tensor maths over the buffers filled here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from defectkit.core.caption import CaptionContext
from defectkit.core.caption.vocabulary import load_vocabulary
from defectkit.core.images import preprocess, resize_mask
from defectkit.core.labels import GOOD
from defectkit.core.results import Thresholds
from defectkit.datasets.base import Sample
from defectkit.fewshot.anomaly import GRAIN_FLOOR, greedy_coreset
from defectkit.fewshot.augment import augment_shots
from defectkit.fewshot.calibration import calibrate_threshold
from defectkit.fewshot.prototypes import anomaly_weights, region_descriptor
from defectkit.fewshot.support import SupportSet
from defectkit.inspect.config import InspectorConfig, auto_input_size
from defectkit.inspect.features import grain_standard_error
from defectkit.inspect.model import InspectorModel

#: Patches a painted mask is grown by before it limits a defect shot's pooling weights:
#: about the reach of the anomaly map's blur (3 x 3 pooling, Gaussian sigma 1 patch).
MASK_MARGIN = 2


@dataclass
class FitReport:
    """What fitting measured: per-shot scores, thresholds, timings (seconds)."""

    good_scores: list[float]
    defect_scores: dict[str, list[float]]
    thresholds: Thresholds
    bank_patches: int
    bank_size: int
    seconds: dict[str, float] = field(default_factory=dict)


@torch.inference_mode()
def fit(
    model,
    support: SupportSet | Sequence[Sample],
    config: InspectorConfig | None = None,
    *,
    progress: bool = False,
) -> FitReport:
    """Fill the memory bank and prototypes from labelled shots and calibrate thresholds.

    Args:
        model: an :class:`InspectorModel`, or an :class:`~defectkit.inspect.inspector.Inspector`
            (its model is fitted).
        support: the labelled shots (``good`` and defect classes, optional masks and notes).
        config: the fitting settings (bank size, augmentations, seed, vocabulary, batch
            size); default: the model's own configuration.
        progress: show a progress bar while features are extracted.
    """
    model: InspectorModel = getattr(model, "model", model)
    cfg = config or model.config
    if not isinstance(support, SupportSet):
        support = SupportSet.from_samples(support)
    t0 = time.perf_counter()
    goods = support.by_class()[GOOD]
    good_images = [s.load_image() for s in goods]
    defect_shots = [s for s in support.shots if s.label != GOOD]
    defect_images = [s.load_image() for s in defect_shots]
    defect_masks = [s.load_mask() for s in defect_shots]
    t_load = time.perf_counter()

    if cfg.input_size is None and not model.backbone.fixed_input_size:
        model.set_input_size(auto_input_size(good_images + defect_images, model.backbone.preprocessing.input_size))
    model.norm.reset()
    aug_images, owner = augment_shots(good_images, cfg.augmentations, seed=cfg.seed)
    bar = _progress_bar(len(aug_images) + len(defect_images), "fit: features", enabled=progress)
    update = bar.update if bar else None
    good_feats = _features_of(model, aug_images, cfg.batch_size, update)
    defect_feats = _features_of(model, defect_images, cfg.batch_size, update) if defect_images else None
    if bar:
        bar.close()
    t_feat = time.perf_counter()

    # Features were extracted with the identity norm: fit it on the good shots
    # and apply it to what was extracted, rather than running the backbone twice.
    model.norm.fit(good_feats)
    good_feats = model.norm(good_feats)
    if defect_feats is not None:
        defect_feats = model.norm(defect_feats)
    d = good_feats.shape[1]
    all_patches = good_feats.permute(0, 2, 3, 1).reshape(-1, d)
    per_image = model.grid[0] * model.grid[1]
    patch_owner = torch.tensor(owner).repeat_interleave(per_image)
    keep = greedy_coreset(all_patches, cfg.bank_size, seed=cfg.seed)
    model.anomaly.set_bank(all_patches[keep])
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
        a, e = model.anomaly.raw_maps(feats, model.norm.detail_z(feats), others)
        appearance.append(a)
        excess.append(e)
    appearance, excess = torch.cat(appearance), torch.cat(excess)
    grain_dev, grain_floor = _fit_grain(model, good_images)
    model.anomaly.calibrate(appearance, excess, grain_dev, grain_floor)
    good_maps, good_scores = model.anomaly.combine(appearance, excess, grain_dev)

    classes = support.classes
    descs = [_descriptor(model, good_feats[row], gmap, None) for row, gmap in zip(originals, good_maps, strict=True)]
    labels = [0] * len(descs)
    defect_scores: dict[str, list[float]] = {}
    if defect_feats is not None:
        dgrain = model.grain(torch.from_numpy(preprocess(defect_images, model.input_size)))
        dmaps, dscores = model.anomaly(defect_feats, model.norm.detail_z(defect_feats), dgrain)
        for shot, feats, dmap, mask, sc in zip(defect_shots, defect_feats, dmaps, defect_masks, dscores, strict=True):
            descs.append(_descriptor(model, feats, dmap, mask))
            labels.append(classes.index(shot.label))
            defect_scores.setdefault(shot.label, []).append(float(sc))
    model.prototypes.set_prototypes(torch.stack(descs), torch.tensor(labels), len(classes))
    t_vocab = time.perf_counter()
    model.caption_context = _fit_caption(model, cfg, shots=[*goods, *defect_shots])
    t_vocab = time.perf_counter() - t_vocab

    all_defects = [v for vals in defect_scores.values() for v in vals]
    image_thr = calibrate_threshold(good_scores.tolist(), all_defects)
    # Pixels: 1.0 is the highest any good patch reached (leave-one-out), but never
    # above the image threshold, so a defective verdict always shows a region.
    model.thresholds = Thresholds(image=image_thr, pixel=1.0).with_image(image_thr)
    model.classes = tuple(classes)
    model.support_summary = support.summary()
    t_end = time.perf_counter()
    return FitReport(
        good_scores=good_scores.tolist(),
        defect_scores=defect_scores,
        thresholds=model.thresholds,
        bank_patches=int(all_patches.shape[0]),
        bank_size=int(model.anomaly.bank.shape[0]),
        seconds={
            "load": t_load - t0,
            "features": t_feat - t_load,
            "coreset": t_bank - t_feat,
            "heads": t_end - t_bank - t_vocab,
            "vocabulary": t_vocab,
            "total": t_end - t0,
        },
    )


def _features_of(
    model: InspectorModel, images: Sequence[np.ndarray], batch_size: int, progress: Callable | None
) -> torch.Tensor:
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(preprocess(list(images[start : start + batch_size]), model.input_size))
        out.append(model.patch_features(batch))
        if progress:
            progress(len(batch))
    return torch.cat(out)


def _fit_grain(model: InspectorModel, good_images: Sequence[np.ndarray]) -> tuple[torch.Tensor | None, float]:
    """Centre the grain statistic on the good shots; return their leave-one-out
    deviations (N) and the floor of its reference (see :class:`AnomalyHead`)."""
    x = torch.from_numpy(preprocess(list(good_images), model.input_size))
    grains = model.grain(x)
    if grains is None:
        return None, 0.0
    model.anomaly.set_grain_center(grains)
    n = grains.shape[0]
    if n > 1:
        others_mean = (grains.sum() - grains) / (n - 1)
        deviation = (grains - others_mean).abs()
    else:
        deviation = torch.zeros_like(grains)
    floor = GRAIN_FLOOR * float(grain_standard_error(x).mean())
    return deviation, floor


def _fit_caption(model: InspectorModel, cfg: InspectorConfig, shots: Sequence[Sample]) -> CaptionContext:
    """Embed the vocabulary (text-aligned backbones only) and record the shots.

    ``shots`` in prototype order (the good shots, then the defect shots), so the
    columns of ``prototype_similarity`` name them.
    """
    vocabulary = load_vocabulary(cfg.vocabulary)
    active = model.caption.fit(model.backbone, vocabulary)
    return CaptionContext(
        shot_labels=tuple(s.label for s in shots),
        shot_notes=tuple(s.note or None for s in shots),
        vocabulary=tuple(vocabulary) if active else (),
    )


def _mask_region(model: InspectorModel, mask: np.ndarray) -> torch.Tensor:
    """H x W bool mask -> h x w 0/1: the patches it touches, grown by MASK_MARGIN."""
    m = torch.from_numpy(resize_mask(mask, model.input_size).astype(np.float32))[None, None]
    touched = F.adaptive_max_pool2d(m, model.grid)
    k = 2 * MASK_MARGIN + 1
    return F.max_pool2d(touched, k, stride=1, padding=MASK_MARGIN)[0, 0]


def _descriptor(model: InspectorModel, feats: torch.Tensor, pmap: torch.Tensor, mask: np.ndarray | None) -> torch.Tensor:
    # The same anomaly weighting as at inference (a prototype must be pooled the way
    # new images will be), kept near the painted region when there is one: the mask
    # says *where* the defect is, not how to pool it; weights restricted to the mask
    # itself pooled shots more tightly than new images ever are (benchmarks/results/tuning.md).
    weights = anomaly_weights(pmap[None], model.prototypes.sharpness)
    if mask is not None and mask.any():
        inside = weights * _mask_region(model, mask)[None]
        if float(inside.sum()) > 1e-6:
            weights = inside
    return region_descriptor(feats[None], weights)[0]


def _progress_bar(total: int, desc: str, *, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)
