"""Fitting beside the model: labelled shots -> the buffers and head of an InspectorModel.

``fit(model, support)`` cuts every shot into the tiles the graph will run (native
resolution unless the configuration names a scale; see :mod:`defectkit.core.tiling`),
extracts patch features, fits their standardisation on the good shots, fills the memory
bank of good patches (greedy coreset) and the bank of labelled-defect patches (inside
the painted masks, or the most anomalous patches of an unpainted shot), then calibrates
on leave-one-out evidence: each good shot scored against a bank without it, each
defect shot against a defect bank without it. The evidence that best separates the two
is kept (:mod:`.calibrate`), one class prototype is pooled per shot, and the thresholds
are set. The model's ``forward`` is untouched by any of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from defectkit.core.caption import CaptionContext
from defectkit.core.caption.vocabulary import load_vocabulary
from defectkit.core.frame import Frame, frame_roi
from defectkit.core.head import CONTRAST, Head, smooth, top_mean
from defectkit.core.labels import GOOD
from defectkit.core.results import Thresholds
from defectkit.core.tiling import (
    TileSpec,
    choose_tile_size,
    clip_box,
    cut_tiles,
    mask_to_grid,
    plan_tiles,
    stitch,
)
from defectkit.datasets.base import Sample
from defectkit.errors import SupportSetError
from defectkit.fewshot.anomaly import greedy_coreset, nearest_distance
from defectkit.fewshot.augment import augment_shots
from defectkit.fewshot.caption_head import embed_vocabulary, text_aligned
from defectkit.fewshot.mutual import image_coresets, mutual_scores, outliers, patch_rows
from defectkit.fewshot.support import SupportSet
from defectkit.inspect.calibrate import (
    Calibration,
    Shot,
    build_class_head,
    build_scoring,
    shot_score,
    teach_class_head,
)
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.feature_cache import FeatureCache, GridSource, features_fingerprint
from defectkit.inspect.model import InspectorModel

#: A painted mask's patches: those it covers at least this much (the rest of the shot
#: is not used as a defect example; a thin scratch covers a quarter of its patches).
MASK_COVER = 0.25
#: Augmented copies of a lone good shot (when none are configured): its leave-one-out
#: bank, so the calibration compares it with something other than itself.
SINGLE_SHOT_COPIES = 3
#: Without a mask, a defect shot's most anomalous patches stand for its defect: this
#: share of its patches (at least one).
UNPAINTED_SHARE = 0.01
#: Unlabelled images used at most (a seeded draw when more are given): the cost of a fit
#: grows with them up to this cap and no further.
MAX_UNLABELLED = 200
#: Unlabelled images larger than this (megapixels) are skipped: the fit works at native
#: resolution, and one 24 MP photo costs as much as a hundred line images.
MAX_UNLABELLED_MP = 5.0
#: An unlabelled image is judged a defect (kept out of the bank) when its mutual score
#: lies this many robust standard deviations above the set's median, in log units.
REJECT_SPREAD = 3.0
#: Of the unlabelled images judged good, the patches whose score (on the labelled model's
#: map, or the mutual score when the images judged each other) is in the top share of
#: all of theirs stay out of the bank (a small defect in an image that passed).
PATCH_REJECT_SHARE = 0.005
#: The labelled model may judge at most this share of the unlabelled images defects;
#: beyond it (line images are mostly good) they are judged by mutual scoring instead.
SCREEN_MAX_REJECT = 0.5
#: ... from this many unlabelled images on: "mostly good" says nothing about three images.
SCREEN_MIN_IMAGES = 10
#: What a fit whose labelled threshold gave way says of it, after how many unlabelled
#: images it judged defects (the CLI and the app).
TOO_STRICT = (
    "by comparing them with each other: the labelled shots' threshold would have rejected more than half "
    "of them, so it is too strict "
    "(are the good shots near-identical? label a few more varied ones)"
)
#: The line images stay in the fit only if, with them in the bank, at least this share of
#: the labelled defect shots that stood above every good shot without them still do (each
#: scored left out). Fewer means they taught the bank a defect the line shares: a line far
#: from mostly good (textile's mix is half defects: with 100 of its images, 4 of 4 defect
#: shots that stood out became 1). Then the fit uses the labelled shots alone.
LINE_MUST_KEEP = 0.5
#: What a fit that did not use them says of them (the CLI and the app).
NOT_USED = (
    "but not used: with them in the memory bank, most labelled defects no longer stood out "
    "from the good shots (is the line far from mostly good?)"
)
#: Unlabelled images judged good that are scored left-out for the calibration (a draw).
CALIBRATION_IMAGES = 30
#: Of those, the top share of scores is left out of the threshold: the stated false-reject
#: rate on unlabelled images judged good (some may be defects the filter let through).
FALSE_REJECT = 0.05


@dataclass
class FitReport:
    """What fitting measured: calibrated leave-one-out scores, thresholds, timings (s)."""

    good_scores: list[float]
    defect_scores: dict[str, list[float]]
    thresholds: Thresholds
    bank_patches: int
    bank_size: int
    unlabelled: int = 0
    unlabelled_rejected: list[int] = field(default_factory=list)  # positions in the input
    unlabelled_skipped: int = 0
    #: Who judged the unlabelled images: ``"labelled"`` (the model of the labelled shots),
    #: ``"mutual"`` (each other: no good shots), ``"mutual_fallback"`` (each other, because
    #: the labelled model would have rejected more than :data:`SCREEN_MAX_REJECT` of
    #: them: its threshold is too strict, usually two near-identical good shots),
    #: ``"unused"`` (judged, then left out altogether: with them in the bank the labelled
    #: defects no longer stood out, see :data:`LINE_MUST_KEEP`); None without unlabelled
    #: images.
    unlabelled_judged_by: str | None = None
    #: Unlabelled images judged good that also taught the class head's classifier what
    #: good looks like (:func:`~defectkit.inspect.calibrate.teach_class_head`); 0 when
    #: none did (no labelled good and defect shots, or with them the left-out defect
    #: shots no longer stood above good).
    unlabelled_taught_classes: int = 0
    evidence: str | None = None
    tile_size: tuple[int, int] | None = None
    #: The frame every image shared, left out of the inspection (lines per edge; empty
    #: when there was none or a region of interest was configured).
    frame: Frame = field(default_factory=Frame)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Images (augmented copies included) the backbone ran on, and those whose raw grids
    #: came from the feature cache instead.
    features_extracted: int = 0
    features_cached: int = 0


@dataclass
class _Grids:
    """Stitched, standardised patch grids of some images (D x h x w each), their owners
    (the shot or image each came from), and for some rows the only patches (flat
    indices) that may enter the bank."""

    grids: list[torch.Tensor]
    owner: list[int]
    keep: dict[int, torch.Tensor] = field(default_factory=dict)


@torch.inference_mode()
def fit(
    model,
    support: SupportSet | Sequence[Sample],
    config: InspectorConfig | None = None,
    *,
    unlabelled: Sequence[np.ndarray | str] = (),
    progress: bool = False,
    cache: FeatureCache | None = None,
) -> FitReport:
    """Fill the banks and head from labelled shots and calibrate the thresholds.

    Args:
        model: an :class:`InspectorModel`, or an :class:`~defectkit.inspect.inspector.Inspector`
            (its model is fitted).
        support: the labelled shots (``good`` and defect classes, optional masks and
            notes). Without ``good`` shots (and no unlabelled images) the model sorts
            defects into types only.
        unlabelled: images of unknown class from the line, mostly good (arrays or paths;
            at most :data:`MAX_UNLABELLED` are used, a seeded draw). Mutual scoring keeps
            those that look like a defect out of the memory bank; the rest widen what
            counts as normal and calibrate the threshold (:mod:`defectkit.fewshot.mutual`).
        config: the fitting settings (bank sizes, augmentations, seed, vocabulary, tiles);
            default: the model's own configuration.
        progress: show a progress bar while features are extracted.
        cache: raw patch grids kept between fits (:mod:`defectkit.inspect.feature_cache`):
            images it already holds for this backbone, configuration and tile size skip
            the backbone, so a refit after adding a shot extracts that shot only and
            gives the same result as a fit without the cache.
    """
    model: InspectorModel = getattr(model, "model", model)
    cfg = config or model.config
    if not isinstance(support, SupportSet):
        support = SupportSet.from_samples(support)
    t0 = time.perf_counter()
    groups = support.by_class()
    goods = groups.get(GOOD, [])
    defect_shots = [s for s in support.shots if s.label != GOOD]
    unlabelled_images, positions, skipped = _load_unlabelled(unlabelled, cfg.seed)
    if not goods and not unlabelled_images and len({s.label for s in defect_shots}) < 2:
        raise SupportSetError(
            "no 'good' shots, no unlabelled images and fewer than two defect classes: label "
            "good images (or give unlabelled ones) to detect defects, or at least two defect "
            "types to sort them"
        )
    good_images = [s.load_image() for s in goods]
    defect_images = [s.load_image() for s in defect_shots]
    defect_masks = [s.load_mask() for s in defect_shots]
    t_load = time.perf_counter()

    spec, frame = _tile_spec(model, cfg, good_images + defect_images + unlabelled_images[:50])
    model.set_tiles(spec)
    model.norm.reset()
    # One good shot has nobody to be left out against but its own augmented copies.
    copies = cfg.augmentations or (SINGLE_SHOT_COPIES if len(good_images) == 1 else 0)
    boxes = [clip_box(spec, image.shape[:2]) for image in good_images]  # (no region: each whole image)
    aug_images, owner = augment_shots(good_images, copies, seed=cfg.seed, boxes=boxes)
    total = len(aug_images) + len(defect_images) + len(unlabelled_images)
    bar = _progress_bar(total, "fit: features", enabled=progress)
    source = GridSource(lambda image: _extract(model, image), cache, features_fingerprint(model))
    good = _raw_grids(source, aug_images, owner, bar)
    defects = _raw_grids(source, defect_images, list(range(len(defect_images))), bar)
    free = _raw_grids(source, unlabelled_images, list(range(len(unlabelled_images))), bar)
    if bar:
        bar.close()
    t_feat = time.perf_counter()

    # Standardise on the good shots (on the unlabelled images, else the defect shots, when
    # there are none), then apply it to what was extracted instead of running the backbone twice.
    reference = good.grids or free.grids or defects.grids
    model.norm.fit(torch.cat([patch_rows(g) for g in reference]), seed=cfg.seed, standardize=cfg.standardize)
    for grids in (good, defects, free):
        grids.grids = [model.norm(g[None])[0] for g in grids.grids]

    # First what the labelled shots alone say (the evidence is chosen on them), then, with
    # unlabelled images, the same again with the line images judged good in the bank.
    state = _state(good, defects, defect_shots, defect_masks, len(goods), spec, model, cfg)
    first = build_scoring(state.good_shots, state.defect_list, cfg) if goods else None
    rejected: list[int] = []
    calibration_rows: list[int] = []
    judged_by = None
    labelled_state, labelled_good = state, good
    if free.grids:
        screen = None
        if first is not None:  # each line image judged as a new part by the labelled model
            # (distances to the defect bank only when its evidence uses them: a fifth of the time)
            contrast = state.defect_bank if first[0].evidence == CONTRAST else None
            line = [_shot(g, GOOD, None, state.bank, contrast, None) for g in free.grids]
            judged = [first[0].apply(s.distance, s.defect_distance) for s in line]
            scores = [shot_score(first[0], s, score) for s, (_, score) in zip(line, judged, strict=True)]
            screen = _Screen(scores, [amap for amap, _ in judged], first[1].threshold)
        known = [good.grids[good.owner.index(i)] for i in range(len(goods))]
        good, rejected, calibration_rows, judged_by = _add_unlabelled(good, free, len(goods), cfg, screen, known)
        state = _state(good, defects, defect_shots, defect_masks, len(goods), spec, model, cfg)
    t_bank = time.perf_counter()

    # Unlabelled images judged good, each scored against the bank without its own patches.
    from_line = [
        _shot(good.grids[row], GOOD, None, state.bank[state.bank_owner != good.owner[row]], state.defect_bank, None)
        for row in calibration_rows
    ]
    has_verdict = bool(goods) or bool(from_line)
    choice = None if first is None else (first[0].evidence, first[0].global_ref is not None)
    scoring, calibration = (
        build_scoring(state.good_shots, state.defect_list, cfg, unlabelled=from_line, false_reject=FALSE_REJECT, choice=choice)
        if has_verdict else (None, None)
    )  # fmt: skip
    if first is not None and free.grids and not _line_keeps_defects(first[1], calibration, len(goods)):
        # The line images made the labelled defects look normal: the labelled shots alone.
        judged_by, state, good, (scoring, calibration), from_line = "unused", labelled_state, labelled_good, first, []
    bank, defect_bank = state.bank, state.defect_bank
    good_shots, defect_list = state.good_shots, state.defect_list
    # Line images stand in for good prototypes only when nobody labelled a good one.
    prototypes = good_shots if good_shots else from_line
    classes = support.classes if good_shots or not from_line else (GOOD, *support.classes)
    head_classes = build_class_head(prototypes + defect_list, classes, scoring, cfg)
    head_classes, taught = teach_class_head(head_classes, from_line if good_shots else (), scoring, cfg)
    vocab = _fit_vocabulary(model, cfg)
    model.head = Head(classes=head_classes, scoring=scoring, vocabulary=vocab)
    # Nothing reads distances to the defect patches but the contrast evidence: without it
    # the graph leaves them out (a fifth of a 1130 x 460 image's distance work).
    model.set_banks(bank, defect_bank if scoring is not None and scoring.evidence == CONTRAST else None)
    model.caption_context = CaptionContext(
        shot_labels=tuple(s.label for s in [*goods, *defect_shots]),
        shot_notes=tuple(s.note or None for s in [*goods, *defect_shots]),
        vocabulary=tuple(load_vocabulary(cfg.vocabulary)) if vocab is not None else (),
    )
    if calibration is not None:
        model.thresholds = Thresholds(image=calibration.threshold, pixel=1.0).with_image(calibration.threshold)
    else:  # type-only: nothing is cut; thresholds stay for the manifest's shape
        model.thresholds = Thresholds(image=float("inf"), pixel=float("inf"))
    model.classes = tuple(head_classes.classes)
    model.support_summary = support.summary()
    t_end = time.perf_counter()
    return FitReport(
        good_scores=[] if calibration is None else calibration.good_scores,
        defect_scores={} if calibration is None else calibration.defect_scores,
        thresholds=model.thresholds,
        bank_patches=sum(int(g.shape[1] * g.shape[2]) for g in good.grids),
        bank_size=int(bank.shape[0]),
        unlabelled=len(unlabelled_images),
        unlabelled_rejected=[positions[i] for i in rejected],
        unlabelled_skipped=skipped,
        unlabelled_judged_by=judged_by,
        unlabelled_taught_classes=taught,
        evidence=None if scoring is None else scoring.evidence + ("+global" if scoring.global_ref else "") + ("+look" if scoring.look else ""),
        tile_size=tuple(spec.size),
        frame=frame,
        features_extracted=source.extracted,
        features_cached=source.cached,
        seconds={
            "load": t_load - t0, "features": t_feat - t_load, "banks": t_bank - t_feat,
            "heads": t_end - t_bank, "total": t_end - t0,
        },
    )  # fmt: skip


def _line_keeps_defects(labelled: Calibration, with_line: Calibration, n_goods: int) -> bool:
    """Whether, with the line images in the bank, at least :data:`LINE_MUST_KEEP` of the
    labelled defect shots that stood above every labelled good shot still do (the good
    shots' scores first in ``with_line``'s, the line images' after them). Their maps
    alone: the overall look's reference rests on one distance per image, and with a
    dozen line images one defect shot in a dozen stands beyond it by chance."""
    return with_line.standing_out(n_goods, maps=True) >= LINE_MUST_KEEP * labelled.standing_out(maps=True)


def judged_words(judged_by: str | None) -> str:
    """What a fit's summary adds after how many unlabelled images it judged defects, for
    :attr:`FitReport.unlabelled_judged_by` (the CLI and the app say the same)."""
    return {"mutual_fallback": f" {TOO_STRICT}", "unused": f", {NOT_USED}"}.get(judged_by or "", "")


def basis_words(good_images: int, line_used: bool, more: str) -> str:
    """Words to follow "the threshold" in a fit's summary (the CLI and the app say the
    same) when it rests on a few good images and no line images (fewer than the
    :data:`CALIBRATION_IMAGES` a line would give it): a good part unlike them scores above
    it (aitex, two good shots, development seeds with 200 test scans each: 69 % of the
    good scans did; ``benchmarks/results/fewshot_suite.md``, stop 32). ``more``: how to
    give it more (the CLI names its flag, the app its checkbox). "" otherwise."""
    if line_used or not 0 < good_images < CALIBRATION_IMAGES:
        return ""
    them = "them" if good_images != 1 else "it"
    return (
        f"rests on {good_images} good image{'s' if good_images != 1 else ''}: good parts "
        f"unlike {them}, another batch, material or light, score above it; {more}"
    )


def taught_words(taught: int) -> str:
    """What a fit's summary adds for :attr:`FitReport.unlabelled_taught_classes` (the CLI
    and the app say the same)."""
    return f", {taught} of the good ones also taught the class head" if taught else ""


@dataclass
class _State:
    """The banks and every labelled shot's left-out evidence against them."""

    bank: torch.Tensor
    bank_owner: torch.Tensor
    defect_bank: torch.Tensor | None
    good_shots: list[Shot]
    defect_list: list[Shot]


def _state(good: _Grids, defects: _Grids, defect_shots, defect_masks, n_goods: int, spec, model, cfg) -> _State:
    """Fill both banks from the good grids and the defect shots, and score every labelled
    shot left out: good shots against the bank without their own patches (a lone good
    shot against its augmented copies), defect shots against the defect bank without theirs."""
    bank, bank_owner = _good_bank(good, cfg)
    # Each defect shot's distance to the good bank, once: it picks an unpainted shot's
    # defect patches and is the shot's own evidence.
    to_good = [nearest_distance(patch_rows(g)[None], bank)[0] if len(bank) else None for g in defects.grids]
    defect_bank, defect_owner = _defect_bank(defects, defect_masks, to_good, spec, cfg)
    originals = [good.owner.index(i) for i in range(n_goods)]
    good_shots = []
    for i, row in enumerate(originals):
        others = bank[bank_owner != i]  # a lone good shot: only its augmented copies remain
        others = others if len(others) else _own_augments(bank, bank_owner, good, i, row)
        good_shots.append(_shot(good.grids[row], GOOD, None, others, defect_bank, None))
    defect_list = [
        _shot(grid, shot.label, _mask_cells(mask, spec), None, defect_bank, defect_owner != j, distance=to_good[j])
        for j, (grid, shot, mask) in enumerate(zip(defects.grids, defect_shots, defect_masks, strict=True))
    ]  # fmt: skip
    return _State(bank, bank_owner, defect_bank, good_shots, defect_list)


# ---------------------------------------------------------------------- features
def _tile_spec(model: InspectorModel, cfg: InspectorConfig, images: Sequence[np.ndarray]) -> tuple[TileSpec, Frame]:
    """The configured tiles, or ones that fit the shots (their size at the configured
    scale, as one tile up to a megapixel, else at most 512 px a side; fixed-size
    backbones keep theirs); without a configured region of interest, one that leaves out
    a frame all the images share (:mod:`defectkit.core.frame`), and that frame."""
    base = model.tiles
    roi, frame = (cfg.roi, Frame()) if cfg.roi is not None else frame_roi(images)
    if cfg.tile_size is not None or model.backbone.fixed_input_size:
        return replace(base, roi=roi), frame
    sizes = []
    for image in images:
        h, w = image.shape[:2]
        if roi is not None:
            w, h = min(roi[2], w) - min(roi[0], w), min(roi[3], h) - min(roi[1], h)
        sizes.append((h, w))
    size = choose_tile_size(sizes, cfg.scale, stride=base.stride)
    margin = min(base.margin, (min(size) // 2 - base.stride) // base.stride * base.stride)
    return TileSpec(size=size, stride=base.stride, margin=max(0, margin), scale=cfg.scale, roi=roi), frame


def _raw_grids(source: GridSource, images: Sequence[np.ndarray], owner: list[int], bar) -> _Grids:
    """Images -> stitched raw (identity-norm) patch grids, D x h x w each (from the
    feature cache where it has them)."""
    grids = []
    for image in images:
        grids.append(torch.from_numpy(source.grid(image)))
        if bar:
            bar.update(1)
    return _Grids(grids=grids, owner=list(owner))


def _extract(model: InspectorModel, image: np.ndarray) -> np.ndarray:
    """One image -> its stitched raw patch grid (D x h x w), the tiles in batches."""
    spec, batch = model.tiles, model.config.batch_size
    tiles, plan = cut_tiles(image, spec)
    parts = [model.patch_features(torch.from_numpy(tiles[i : i + batch])) for i in range(0, len(tiles), batch)]
    return stitch(torch.cat(parts).numpy(), spec, plan)


def _load_unlabelled(images: Sequence[np.ndarray | str], seed: int) -> tuple[list[np.ndarray], list[int], int]:
    """At most :data:`MAX_UNLABELLED` unlabelled images as arrays (a seeded draw), their
    positions in ``images``, and how many were skipped for being over
    :data:`MAX_UNLABELLED_MP`."""
    from pathlib import Path

    from defectkit.core.images import image_size, read_image

    items = list(images)
    order = list(range(len(items)))
    if len(items) > MAX_UNLABELLED:
        order = sorted(np.random.default_rng(seed).choice(len(items), MAX_UNLABELLED, replace=False).tolist())
    out, positions, skipped = [], [], 0
    for position in order:
        item = items[position]
        if isinstance(item, np.ndarray):
            h, w = item.shape[:2]
        else:  # the header only: a huge photo is not decoded just to be skipped
            w, h = image_size(Path(item).read_bytes())
        if h * w > MAX_UNLABELLED_MP * 1e6:
            skipped += 1
            continue
        out.append(item if isinstance(item, np.ndarray) else read_image(item))
        positions.append(position)
    return out, positions, skipped


@dataclass
class _Screen:
    """The labelled model's judgement of the line images, each scored as a new part."""

    scores: list[float]
    maps: list[np.ndarray]  # calibrated grid maps
    threshold: float


def _add_unlabelled(
    good: _Grids, free: _Grids, n_goods: int, cfg: InspectorConfig,
    screen: _Screen | None,
    known: Sequence[torch.Tensor] = (),
) -> tuple[_Grids, list[int], list[int], str]:
    """Judge unlabelled grids and add the good-looking ones' patches.

    With labelled good shots (``screen``), an image scoring above the threshold is a
    defect, unless that would reject more than :data:`SCREEN_MAX_REJECT` of at least
    :data:`SCREEN_MIN_IMAGES`: line images are mostly good, so the labelled model's
    threshold is then wrong (two near-identical good shots set it), and the images judge
    each other, the good shots among every image's references (``known``), and the
    labelled model's ranking no longer counts: the images it ranks the most unusual are
    then mostly the looks its good shots do not show (aitex: the other fabrics), the
    ones that teach the bank most (a defect many line images share looks normal to
    them; :func:`_line_keeps_defects` catches a line that taught the bank the labelled
    defects). Without good shots, mutual scoring among the images
    decides (:mod:`defectkit.fewshot.mutual`). Either way the accepted images' most
    unusual patches (:data:`PATCH_REJECT_SHARE`, on the map that judged them: the
    labelled model's or the mutual scores) stay out: a small defect the image score
    missed must not become normal.

    Returns the good grids with one entry per accepted image (its coreset patches; owners
    after the labelled shots'), the rejected images' indices, the rows of the accepted
    images chosen for the calibration, and who judged them (see
    :attr:`FitReport.unlabelled_judged_by`).
    """
    n = len(free.grids)
    reject = None
    judged_by = "mutual" if screen is None else "mutual_fallback"
    if screen is not None:
        judged = np.asarray(screen.scores) > screen.threshold
        if len(judged) < SCREEN_MIN_IMAGES or judged.mean() <= SCREEN_MAX_REJECT:
            # The labelled model's judgement stands; each image it passes offers its
            # coreset (the same as the fallback's: each image's is its own).
            reject, maps, judged_by = judged, screen.maps, "labelled"
            passed = np.flatnonzero(~judged)
            index = dict(zip(passed.tolist(), image_coresets([free.grids[i] for i in passed], seed=cfg.seed), strict=True))
    if reject is None:
        k = len(known)
        mutual = mutual_scores([*known, *free.grids], references=range(k), seed=cfg.seed)
        stats = [top_mean(smooth(m, cfg.sigma), cfg.top_fraction) for m in mutual.maps[k:]]
        reject = outliers(stats, spread=REJECT_SPREAD)
        maps, index = mutual.maps[k:], mutual.coreset_index[k:]
    accepted = [i for i in range(n) if not reject[i]]
    cut = np.inf
    if maps is not None and accepted:
        cut = float(np.quantile(np.concatenate([maps[i].ravel() for i in accepted]), 1.0 - PATCH_REJECT_SHARE))
    out = _Grids(grids=list(good.grids), owner=list(good.owner))
    rows = []
    for i in accepted:
        grid = free.grids[i]
        keep = torch.ones(len(index[i]), dtype=torch.bool)
        if maps is not None:
            keep = torch.from_numpy(maps[i].ravel()[index[i].numpy()] <= cut)
        rows.append(len(out.grids))
        out.grids.append(grid)
        out.owner.append(n_goods + i)
        out.keep[rows[-1]] = index[i][keep]
    rng = np.random.default_rng(cfg.seed)
    chosen = sorted(rng.choice(rows, size=min(CALIBRATION_IMAGES, len(rows)), replace=False).tolist()) if rows else []
    return out, [int(i) for i in np.flatnonzero(reject)], chosen, judged_by


# ---------------------------------------------------------------------- banks
def _good_bank(good: _Grids, cfg: InspectorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The memory bank of good patches (greedy coreset) and each entry's shot."""
    if not good.grids:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    rows = [patch_rows(g) if r not in good.keep else patch_rows(g)[good.keep[r]] for r, g in enumerate(good.grids)]
    patches = torch.cat(rows)
    owners = torch.cat([torch.full((len(p),), o) for p, o in zip(rows, good.owner, strict=True)])
    keep = greedy_coreset(patches, cfg.bank_size, seed=cfg.seed)
    return patches[keep].contiguous(), owners[keep]


def _defect_bank(
    defects: _Grids, masks: Sequence[np.ndarray | None], to_good: Sequence[torch.Tensor | None],
    spec: TileSpec, cfg: InspectorConfig,
) -> tuple[torch.Tensor | None, torch.Tensor]:  # fmt: skip
    """Patches of the labelled defects (inside painted masks; else each shot's most
    anomalous share, by ``to_good``: each shot's patch distances to the good bank) and
    each entry's shot; None without a good bank to contrast."""
    if not defects.grids or any(d is None for d in to_good):
        return None, torch.zeros(0, dtype=torch.long)
    chosen, owners = [], []
    for j, (grid, mask) in enumerate(zip(defects.grids, masks, strict=True)):
        patches = patch_rows(grid)
        picked = None
        cells = _mask_cells(mask, spec)
        if cells is not None and cells.any():
            picked = patches[torch.from_numpy(cells.reshape(-1))]
        if picked is None:
            d = to_good[j]
            k = max(1, int(round(len(d) * UNPAINTED_SHARE)))
            picked = patches[d.topk(k).indices]
        chosen.append(picked)
        owners.append(torch.full((len(picked),), j))
    patches, owner = torch.cat(chosen), torch.cat(owners)
    keep = greedy_coreset(patches, cfg.defect_bank_size, seed=cfg.seed)
    return patches[keep].contiguous(), owner[keep]


def _mask_cells(mask: np.ndarray | None, spec: TileSpec) -> np.ndarray | None:
    """An image-sized painted mask -> h x w bool: the cells it covers enough."""
    if mask is None:
        return None
    return mask_to_grid(mask, spec, plan_tiles(spec, mask.shape)) >= MASK_COVER


def _own_augments(bank, bank_owner, good: _Grids, shot: int, row: int) -> torch.Tensor:
    """A single good shot's leave-one-out bank: its augmented copies only (the bank
    entries of the original image are not tracked apart, so rebuild from the copies)."""
    copies = [g for k, (g, o) in enumerate(zip(good.grids, good.owner, strict=True)) if o == shot and k != row]
    if not copies:  # no augmentations: nothing to compare with; the shot against itself
        return bank
    return torch.cat([patch_rows(g) for g in copies])


def _shot(grid, label, mask, bank, defect_bank, defect_keep, *, distance=None) -> Shot:
    """A shot's leave-one-out evidence: distances to the good bank (``bank``, without
    it; or ``distance``, its flat patch distances already computed) and to the defect
    bank (without its own entries where ``defect_keep`` says)."""
    patches = patch_rows(grid)[None]
    h, w = grid.shape[1:]
    if distance is None and bank is not None and len(bank):
        distance = nearest_distance(patches, bank)[0]
    distance = None if distance is None else distance.reshape(h, w)
    defect = None
    if defect_bank is not None and len(defect_bank):
        others = defect_bank if defect_keep is None else defect_bank[defect_keep]
        if len(others):
            defect = nearest_distance(patches, others)[0].reshape(h, w)
    return Shot(
        label=label, features=grid.numpy(),
        distance=None if distance is None else distance.numpy(),
        defect_distance=None if defect is None else defect.numpy(), mask=mask,
    )  # fmt: skip


# ---------------------------------------------------------------------- caption
def _fit_vocabulary(model: InspectorModel, cfg: InspectorConfig) -> np.ndarray | None:
    """V x C unit text embeddings of the vocabulary (text-aligned backbones only)."""
    if not text_aligned(model.backbone):
        return None
    vocabulary = load_vocabulary(cfg.vocabulary)
    if not len(vocabulary):
        return None
    from defectkit.core.caption.vocabulary import Vocabulary

    vocab = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary.from_lines(vocabulary)
    return embed_vocabulary(model.backbone.encode_text, vocab).numpy()


def _progress_bar(total: int, desc: str, *, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)

